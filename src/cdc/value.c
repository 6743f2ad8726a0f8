/*-------------------------------------------------------------------------
 *
 * value.c
 *		  Column values as Debezium's PostgreSQL connector writes them
 *
 * Each value is written as Kafka Connect's JSON converter writes the value
 * that Debezium's PostgreSQL connector makes of it (PostgresValueConverter
 * and the io.debezium.time and io.debezium.data logical types), for the
 * type mapping that the stream's options choose: dates as days and times
 * and timestamps as milli- or microseconds since the epoch, decimals as the
 * bytes of their unscaled value, timestamps with a time zone as UTC text,
 * bytes in base64 (what the converter does with Connect's bytes), and so
 * on.  The values PostgreSQL has and Java has not (infinite dates and
 * timestamps) come out as Debezium's do.
 *
 * IDENTIFICATION
 *		  src/cdc/value.c
 *
 *-------------------------------------------------------------------------
 */
#include "cdc/cdc.h"

#include <math.h>

#include "common/base64.h"
#include "common/shortest_dec.h"
#include "datatype/timestamp.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/cash.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/float.h"
#include "utils/geo_decls.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/varbit.h"

/* from 2000-01-01, PostgreSQL's epoch, to 1970-01-01 */
#define EPOCH_SHIFT_DAYS	(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE)
#define EPOCH_SHIFT_USECS	EPOCH_SHIFT_USECS_FOR_SOURCE

/* What Debezium sends for timestamp 'infinity' and '-infinity' */
#define DBZ_TIMESTAMP_INFINITY_US	INT64CONST(9223372036825200000)
#define DBZ_TIMESTAMP_NINFINITY_US	INT64CONST(-9223372036832400000)

/* set while the initial snapshot is encoded */
bool		kfdw_cdc_snapshot_values = false;

/* Debezium's average month, for intervals as microseconds */
#define DBZ_DAYS_PER_MONTH	(365.25 / 12.0)

static bool string_valued(KafkaCdcType *type);
static void append_output(StringInfo buf, KafkaCdcType *type, Datum value);
static void append_iso_date(StringInfo buf, int32 days, bool close);
static void append_iso_time(StringInfo buf, int64 us);
static void append_double(StringInfo buf, double d);
static void append_java_number(StringInfo buf, const char *str);
static void append_bytes(StringInfo buf, const unsigned char *data, int len,
						 KafkaCdcBinaryMode mode);
static void append_unscaled(StringInfo buf, const char *digits, int *scale);
static void append_numeric(StringInfo buf, KafkaCdcType *type,
						   const KafkaCdcOptions *opts, Datum value);
static void append_money(StringInfo buf, const KafkaCdcOptions *opts, Cash c);
static void append_fraction(StringInfo buf, int64 usecs, int digits);
static void append_timestamptz(StringInfo buf, KafkaCdcType *type,
							   TimestampTz ts);
static void append_timetz(StringInfo buf, TimeTzADT *t);
static void append_interval(StringInfo buf, const KafkaCdcOptions *opts,
							Interval *iv);
static void append_bits(StringInfo buf, VarBit *bits);
static void append_hstore(StringInfo buf, const char *text);
static void append_point(StringInfo buf, Point *p);
static void append_array(StringInfo buf, KafkaCdcType *type,
						 const KafkaCdcOptions *opts, Datum value);

/*
 * Append the JSON of a non-null value of a column of type type.
 */
void
kfdw_cdc_append_value(StringInfo buf, KafkaCdcType *type,
					  const KafkaCdcOptions *opts, Datum value)
{
	KafkaCdcTimeMode tm = opts->time_mode;

	switch (type->kind)
	{
		case KFDW_KIND_INT16:
			appendStringInfo(buf, "%d", (int) DatumGetInt16(value));
			break;
		case KFDW_KIND_INT32:
			appendStringInfo(buf, "%d", DatumGetInt32(value));
			break;
		case KFDW_KIND_INT64:
			if (type->typid == OIDOID)
				appendStringInfo(buf, "%u", DatumGetObjectId(value));
			else
				appendStringInfo(buf, INT64_FORMAT, DatumGetInt64(value));
			break;
		case KFDW_KIND_FLOAT32:
			{
				float4		f = DatumGetFloat4(value);

				if (isnan(f) || isinf(f))
					append_double(buf, f);
				else
				{
					char		str[32];

					float_to_shortest_decimal_buf(f, str);
					append_java_number(buf, str);
				}
			}
			break;
		case KFDW_KIND_FLOAT64:
			append_double(buf, DatumGetFloat8(value));
			break;
		case KFDW_KIND_BOOL:
			appendStringInfoString(buf, DatumGetBool(value) ? "true" : "false");
			break;
		case KFDW_KIND_BIT1:
			{
				VarBit	   *bits = DatumGetVarBitP(value);

				appendStringInfoString(buf, VARBITLEN(bits) > 0 &&
									   (VARBITS(bits)[0] & 0x80) ? "true" : "false");
			}
			break;
		case KFDW_KIND_NUMERIC:
			append_numeric(buf, type, opts, value);
			break;
		case KFDW_KIND_MONEY:
			append_money(buf, opts, DatumGetCash(value));
			break;
		case KFDW_KIND_BYTEA:
			{
				bytea	   *b = DatumGetByteaPP(value);

				append_bytes(buf, (unsigned char *) VARDATA_ANY(b),
							 VARSIZE_ANY_EXHDR(b), opts->binary_mode);
			}
			break;
		case KFDW_KIND_DATE:
			{
				DateADT		d = DatumGetDateADT(value);

				/* Java's int arithmetic: the infinities wrap around */
				int32		days = (int32) ((uint32) d + (uint32) EPOCH_SHIFT_DAYS);

				/*
				 * Debezium reads its snapshot through JDBC, whose infinite
				 * dates are other numbers again.
				 */
				if (kfdw_cdc_snapshot_values && DATE_NOT_FINITE(d))
					days = DATE_IS_NOEND(d) ? -622191234 : -625821272;

				if (tm == KFDW_TIME_ISOSTRING && kfdw_cdc_snapshot_values &&
					DATE_NOT_FINITE(d))
					appendStringInfoString(buf, DATE_IS_NOEND(d) ?
										   "\"+292278994-08-16Z\"" :
										   "\"+292269055-12-02Z\"");
				else if (tm == KFDW_TIME_ISOSTRING)
					append_iso_date(buf, days, true);
				else
					appendStringInfo(buf, "%d", days);
			}
			break;
		case KFDW_KIND_TIME:
			{
				TimeADT		t = DatumGetTimeADT(value);
				bool		micro = tm == KFDW_TIME_ADAPTIVE_MICRO ||
					(tm == KFDW_TIME_ADAPTIVE &&
					 !(type->typmod >= 0 && type->typmod <= 3));

				if (tm == KFDW_TIME_ISOSTRING)
				{
					appendStringInfoChar(buf, '"');
					append_iso_time(buf, t);
					appendStringInfoString(buf, "Z\"");
				}
				else if (micro)
					appendStringInfo(buf, INT64_FORMAT, t);
				else
					appendStringInfo(buf, "%d", (int) (t / 1000));
			}
			break;
		case KFDW_KIND_TIMETZ:
			append_timetz(buf, DatumGetTimeTzADTP(value));
			break;
		case KFDW_KIND_TIMESTAMP:
			{
				Timestamp	ts = DatumGetTimestamp(value);
				int64		us;
				bool		millis = tm == KFDW_TIME_CONNECT ||
					(type->typmod >= 0 && type->typmod <= 3);

				if (TIMESTAMP_IS_NOEND(ts))
					us = DBZ_TIMESTAMP_INFINITY_US;
				else if (TIMESTAMP_IS_NOBEGIN(ts))
					us = DBZ_TIMESTAMP_NINFINITY_US;
				else
					us = ts + EPOCH_SHIFT_USECS;
				if (tm == KFDW_TIME_ISOSTRING)
				{
					/* Debezium's infinities, as Java's Instant prints them */
					if (TIMESTAMP_IS_NOEND(ts))
						appendStringInfoString(buf, "\"+294247-01-10T04:00:25.2Z\"");
					else if (TIMESTAMP_IS_NOBEGIN(ts))
						appendStringInfoString(buf, "\"-290308-12-21T19:59:27.6Z\"");
					else
					{
						int64		day = us >= 0 ? us / USECS_PER_DAY :
							-((-us + USECS_PER_DAY - 1) / USECS_PER_DAY);

						append_iso_date(buf, (int32) day, false);
						appendStringInfoChar(buf, 'T');
						append_iso_time(buf, us - day * USECS_PER_DAY);
						appendStringInfoString(buf, "Z\"");
					}
					break;
				}
				if (millis)
					us = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
				appendStringInfo(buf, INT64_FORMAT, us);
			}
			break;
		case KFDW_KIND_TIMESTAMPTZ:
			append_timestamptz(buf, type, DatumGetTimestampTz(value));
			break;
		case KFDW_KIND_INTERVAL:
			append_interval(buf, opts, DatumGetIntervalP(value));
			break;
		case KFDW_KIND_BITS:
			append_bits(buf, DatumGetVarBitP(value));
			break;
		case KFDW_KIND_HSTORE:
			{
				char	   *text = OidOutputFunctionCall(type->typoutput, value);
				StringInfoData obj;

				initStringInfo(&obj);
				append_hstore(&obj, text);
				if (opts->hstore_map)
					appendBinaryStringInfo(buf, obj.data, obj.len);
				else
					kfdw_json_append_string(buf, obj.data);
			}
			break;
		case KFDW_KIND_POINT:
			append_point(buf, DatumGetPointP(value));
			break;
		case KFDW_KIND_ARRAY:
			append_array(buf, type, opts, value);
			break;
		case KFDW_KIND_TEXT:
		case KFDW_KIND_UUID:
		case KFDW_KIND_JSON:
		case KFDW_KIND_XML:
		case KFDW_KIND_ENUM:
			append_output(buf, type, value);
			break;
	}
}

/*
 * The value of an unchanged TOASTed column, which the WAL does not carry:
 * the placeholder, in the column's form.  Types that cannot hold it are
 * null.
 */
void
kfdw_cdc_append_unavailable(StringInfo buf, KafkaCdcType *type,
							const KafkaCdcOptions *opts)
{
	if (string_valued(type))
	{
		kfdw_json_append_string(buf, opts->placeholder);
		return;
	}
	switch (type->kind)
	{
		case KFDW_KIND_HSTORE:
			if (opts->hstore_map)
				appendStringInfoString(buf, "null");
			else
				kfdw_json_append_string(buf, opts->placeholder);
			break;
		case KFDW_KIND_BYTEA:
			append_bytes(buf, (unsigned char *) opts->placeholder,
						 strlen(opts->placeholder), opts->binary_mode);
			break;
		case KFDW_KIND_ARRAY:
			appendStringInfoChar(buf, '[');
			kfdw_cdc_append_unavailable(buf, type->elem, opts);
			appendStringInfoChar(buf, ']');
			break;
		default:
			appendStringInfoString(buf, "null");
			break;
	}
}

/*
 * A required field of a row whose value the event does not have (an old
 * row carries the identity columns only): the zero of its type, as
 * Debezium fills it in.
 */
void
kfdw_cdc_append_zero(StringInfo buf, KafkaCdcType *type)
{
	if (string_valued(type))
	{
		appendStringInfoString(buf, "\"\"");
		return;
	}
	switch (type->kind)
	{
		case KFDW_KIND_INT16:
		case KFDW_KIND_INT32:
		case KFDW_KIND_INT64:
			appendStringInfoChar(buf, '0');
			break;
		case KFDW_KIND_FLOAT32:
		case KFDW_KIND_FLOAT64:
			appendStringInfoString(buf, "0.0");
			break;
		case KFDW_KIND_BOOL:
		case KFDW_KIND_BIT1:
			appendStringInfoString(buf, "false");
			break;
		default:
			appendStringInfoString(buf, "null");
			break;
	}
}

/* Are the type's values JSON strings, whatever the options? */
static bool
string_valued(KafkaCdcType *type)
{
	switch (type->kind)
	{
		case KFDW_KIND_TEXT:
		case KFDW_KIND_UUID:
		case KFDW_KIND_JSON:
		case KFDW_KIND_XML:
		case KFDW_KIND_ENUM:
			return true;
		default:
			return false;
	}
}

/* The type's output function, as a JSON string */
static void
append_output(StringInfo buf, KafkaCdcType *type, Datum value)
{
	kfdw_json_append_string(buf, OidOutputFunctionCall(type->typoutput, value));
}

/*
 * A date as io.debezium.time.IsoDate ("2020-02-29Z"), from days since 1970
 * (years beyond 9999 as Java writes them: "+10000"); close ends the string.
 */
static void
append_iso_date(StringInfo buf, int32 days, bool close)
{
	int			year;
	int			month;
	int			mday;
	int64		jd = (int64) days + UNIX_EPOCH_JDATE;

	/* the wrapped infinities, which j2date() does not reach */
	if (jd < 0 || jd > INT_MAX)
	{
		appendStringInfo(buf, "\"%s", days == -2147472692 ? "-5877611-06-21" :
						 days == -2147472691 ? "-5877611-06-22" : "0000-01-01");
	}
	else
	{
		/* astronomical years, as Java's: year 0 is 1 BC */
		j2date((int) jd, &year, &month, &mday);
		appendStringInfo(buf, year > 9999 ? "\"+%d-%02d-%02d" :
						 year < 0 ? "\"%05d-%02d-%02d" : "\"%04d-%02d-%02d",
						 year, month, mday);
	}
	if (close)
		appendStringInfoString(buf, "Z\"");
}

/* hh:mm:ss[.fraction], as few digits of the fraction as it takes */
static void
append_iso_time(StringInfo buf, int64 us)
{
	appendStringInfo(buf, "%02d:%02d:%02d",
					 (int) (us / USECS_PER_HOUR),
					 (int) (us / USECS_PER_MINUTE % 60),
					 (int) (us / USECS_PER_SEC % 60));
	append_fraction(buf, us % USECS_PER_SEC, -1);
}

/* A double as Jackson writes one: NaN and the infinities quoted */
static void
append_double(StringInfo buf, double d)
{
	char		str[32];

	if (isnan(d))
		appendStringInfoString(buf, "\"NaN\"");
	else if (isinf(d))
		appendStringInfoString(buf, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
	else
	{
		double_to_shortest_decimal_buf(d, str);
		append_java_number(buf, str);
	}
}

/*
 * A number, given as the shortest text that reads back exactly ("2",
 * "1e+10", "0.00012"), as Java's Double.toString() and Float.toString()
 * (which Jackson uses) write it: "2.0", "1.0E10", "1.2E-4"; plain from
 * 10^-3 up to 10^7, scientific outside.
 */
static void
append_java_number(StringInfo buf, const char *str)
{
	char		digits[32];
	int			ndigits = 0;
	int			point = -1;		/* digits before the decimal point */
	int			exp = 0;
	int			lead = 0;
	const char *p = str;
	int			e;				/* exponent of the first significant digit */
	int			i;

	if (*p == '-')
	{
		appendStringInfoChar(buf, '-');
		p++;
	}
	for (; *p && *p != 'e' && *p != 'E'; p++)
	{
		if (*p == '.')
			point = ndigits;
		else if (ndigits < (int) sizeof(digits) - 1)
			digits[ndigits++] = *p;
	}
	if (*p)
		exp = atoi(p + 1);
	if (point < 0)
		point = ndigits;
	/* leading zeros ("0.00012") and trailing ones ("1200") */
	while (lead < ndigits - 1 && digits[lead] == '0')
		lead++;
	while (ndigits - 1 > lead && digits[ndigits - 1] == '0')
		ndigits--;
	if (digits[lead] == '0')
	{
		appendStringInfoString(buf, "0.0");
		return;
	}
	e = point - lead - 1 + exp;

	if (e >= -3 && e < 7)
	{
		if (e < 0)
		{
			appendStringInfoString(buf, "0.");
			for (i = -1; i > e; i--)
				appendStringInfoChar(buf, '0');
			appendBinaryStringInfo(buf, digits + lead, ndigits - lead);
		}
		else
		{
			for (i = 0; i <= e; i++)
				appendStringInfoChar(buf, lead + i < ndigits ? digits[lead + i] : '0');
			appendStringInfoChar(buf, '.');
			if (lead + e + 1 < ndigits)
				appendBinaryStringInfo(buf, digits + lead + e + 1,
									   ndigits - lead - e - 1);
			else
				appendStringInfoChar(buf, '0');
		}
	}
	else
	{
		appendStringInfoChar(buf, digits[lead]);
		appendStringInfoChar(buf, '.');
		if (ndigits - lead > 1)
			appendBinaryStringInfo(buf, digits + lead + 1, ndigits - lead - 1);
		else
			appendStringInfoChar(buf, '0');
		appendStringInfo(buf, "E%d", e);
	}
}

/* Bytes as binary.handling.mode says (Connect's bytes: base64) */
static void
append_bytes(StringInfo buf, const unsigned char *data, int len,
			 KafkaCdcBinaryMode mode)
{
	appendStringInfoChar(buf, '"');
	if (mode == KFDW_BINARY_HEX)
	{
		static const char hex[] = "0123456789abcdef";
		int			i;

		for (i = 0; i < len; i++)
		{
			appendStringInfoChar(buf, hex[data[i] >> 4]);
			appendStringInfoChar(buf, hex[data[i] & 0xf]);
		}
	}
	else
	{
		int			enclen = pg_b64_enc_len(len);
		int			n;
		int			i;

		enlargeStringInfo(buf, enclen + 1);
		n = pg_b64_encode((const char *) data, len, buf->data + buf->len, enclen);
		if (n < 0)
			elog(ERROR, "could not encode %d bytes in base64", len);
		if (mode == KFDW_BINARY_BASE64_URL)
		{
			for (i = 0; i < n; i++)
			{
				char	   *c = &buf->data[buf->len + i];

				if (*c == '+')
					*c = '-';
				else if (*c == '/')
					*c = '_';
			}
		}
		buf->len += n;
		buf->data[buf->len] = '\0';
	}
	appendStringInfoChar(buf, '"');
}

/*
 * The bytes of an unscaled decimal (Java's BigInteger.toByteArray(): two's
 * complement, big-endian, as few bytes as hold the sign) in base64, from
 * a decimal number's text; *scale gets its digits after the point.
 */
static void
append_unscaled(StringInfo buf, const char *text, int *scale)
{
	bool		negative = text[0] == '-';
	char	   *digits = palloc(strlen(text) + 1);
	int			ndigits = 0;
	unsigned char *bytes;
	int			nbytes = 0;
	int			i;
	const char *p;

	*scale = 0;
	for (p = text + (negative ? 1 : 0); *p; p++)
	{
		if (*p == '.')
			*scale = strlen(p + 1);
		else
			digits[ndigits++] = *p - '0';
	}

	/* magnitude, little-endian bytes, by long division of the digits */
	bytes = palloc(ndigits / 2 + 2);
	for (;;)
	{
		int			rem = 0;
		bool		nonzero = false;

		for (i = 0; i < ndigits; i++)
		{
			int			cur = rem * 10 + digits[i];

			digits[i] = cur / 256;
			rem = cur % 256;
			nonzero |= digits[i] != 0;
		}
		bytes[nbytes++] = rem;
		if (!nonzero)
			break;
	}
	/* a sign bit of its own if the top byte's is taken */
	if (bytes[nbytes - 1] & 0x80)
		bytes[nbytes++] = 0;
	if (negative)
	{
		int			carry = 1;

		for (i = 0; i < nbytes; i++)
		{
			int			b = (~bytes[i] & 0xff) + carry;

			bytes[i] = b & 0xff;
			carry = b >> 8;
		}
		/* -128 needs one byte, not two */
		while (nbytes > 1 && bytes[nbytes - 1] == 0xff &&
			   (bytes[nbytes - 2] & 0x80))
			nbytes--;
	}
	else
	{
		while (nbytes > 1 && bytes[nbytes - 1] == 0 &&
			   !(bytes[nbytes - 2] & 0x80))
			nbytes--;
	}

	/* big-endian */
	for (i = 0; i < nbytes / 2; i++)
	{
		unsigned char t = bytes[i];

		bytes[i] = bytes[nbytes - 1 - i];
		bytes[nbytes - 1 - i] = t;
	}
	append_bytes(buf, bytes, nbytes, KFDW_BINARY_BYTES);
}

static void
append_numeric(StringInfo buf, KafkaCdcType *type, const KafkaCdcOptions *opts,
			   Datum value)
{
	Numeric		num = DatumGetNumeric(value);
	char	   *text;
	int			scale;

	if (opts->decimal_mode == KFDW_DECIMAL_DOUBLE)
	{
		append_double(buf, DatumGetFloat8(DirectFunctionCall1(numeric_float8,
															  value)));
		return;
	}
	text = DatumGetCString(DirectFunctionCall1(numeric_out, value));
	if (opts->decimal_mode == KFDW_DECIMAL_STRING)
	{
		/* the special values by the names of Debezium's enum */
		if (numeric_is_nan(num))
			text = "NAN";
		else if (numeric_is_inf(num))
			text = text[0] == '-' ? "NEGATIVE_INFINITY" : "POSITIVE_INFINITY";
		kfdw_json_append_string(buf, text);
		return;
	}
	/* Java's BigDecimal has no NaN or infinity */
	if (numeric_is_nan(num) || numeric_is_inf(num))
	{
		appendStringInfoString(buf, "null");
		return;
	}
	if (type->typmod >= (int32) VARHDRSZ)
		append_unscaled(buf, text, &scale);
	else
	{
		StringInfoData bytes;

		initStringInfo(&bytes);
		append_unscaled(&bytes, text, &scale);
		appendStringInfo(buf, "{\"scale\":%d,\"value\":%s}", scale, bytes.data);
	}
}

/* money, in cents: a decimal of scale 2 */
static void
append_money(StringInfo buf, const KafkaCdcOptions *opts, Cash c)
{
	char	   *text;
	uint64		abs = c < 0 ? -(uint64) c : (uint64) c;
	int			scale;

	text = psprintf("%s" UINT64_FORMAT ".%02d", c < 0 ? "-" : "",
					abs / 100, (int) (abs % 100));
	if (opts->decimal_mode == KFDW_DECIMAL_DOUBLE)
		append_double(buf, c / 100.0);
	else if (opts->decimal_mode == KFDW_DECIMAL_STRING)
		kfdw_json_append_string(buf, text);
	else
		append_unscaled(buf, text, &scale);
}

/*
 * ".ffffff" of usecs (0..999999): digits of them, or with digits < 0 as
 * few as it takes (none for 0), as Java's ISO formatters do.
 */
static void
append_fraction(StringInfo buf, int64 usecs, int digits)
{
	char		frac[8];
	int			n;

	snprintf(frac, sizeof(frac), "%06d", (int) usecs);
	if (digits < 0)
	{
		n = 6;
		while (n > 0 && frac[n - 1] == '0')
			n--;
	}
	else
		n = Min(digits, 6);
	if (n > 0)
		appendStringInfo(buf, ".%.*s", n, frac);
}

/* io.debezium.time.ZonedTimestamp: in UTC, the column's digits of seconds */
static void
append_timestamptz(StringInfo buf, KafkaCdcType *type, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_IS_NOEND(ts))
	{
		appendStringInfoString(buf, "\"infinity\"");
		return;
	}
	if (TIMESTAMP_IS_NOBEGIN(ts))
	{
		appendStringInfoString(buf, "\"-infinity\"");
		return;
	}
	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	appendStringInfo(buf, "\"%04d-%02d-%02dT%02d:%02d:%02d",
					 tm.tm_year, tm.tm_mon, tm.tm_mday,
					 tm.tm_hour, tm.tm_min, tm.tm_sec);
	append_fraction(buf, fsec, type->typmod >= 0 ? type->typmod : 6);
	appendStringInfoString(buf, "Z\"");
}

/* io.debezium.time.ZonedTime: the time in UTC */
static void
append_timetz(StringInfo buf, TimeTzADT *t)
{
	int64		us = t->time + (int64) t->zone * USECS_PER_SEC;

	us %= USECS_PER_DAY;
	if (us < 0)
		us += USECS_PER_DAY;
	appendStringInfoChar(buf, '"');
	append_iso_time(buf, us);
	appendStringInfoString(buf, "Z\"");
}

/*
 * An interval: io.debezium.time.MicroDuration (microseconds, a month being
 * 365.25 / 12 days, computed in doubles as Debezium does) or
 * io.debezium.time.Interval (ISO 8601).
 */
static void
append_interval(StringInfo buf, const KafkaCdcOptions *opts, Interval *iv)
{
	int			years = iv->month / 12;
	int			months = iv->month % 12;
	int64		time = iv->time;
	int			hours = (int) (time / USECS_PER_HOUR);
	int			minutes = (int) (time / USECS_PER_MINUTE % 60);
	int			whole = (int) (time / USECS_PER_SEC % 60);
	int			micros = (int) (time % USECS_PER_SEC);
	double		seconds = whole + micros / 1000000.0;

	if (opts->interval_string)
	{
		appendStringInfo(buf, "\"P%dY%dM%dDT%dH%dM", years, months, iv->day,
						 hours, minutes);
		if (micros == 0)
			appendStringInfo(buf, "%dS\"", whole);
		else
		{
			char	   *s = psprintf("%s%d.%06d", (whole < 0 || micros < 0) ? "-" : "",
									 abs(whole), abs(micros));
			int			n = strlen(s);

			while (s[n - 1] == '0')
				s[--n] = '\0';
			appendStringInfo(buf, "%sS\"", s);
		}
	}
	else
	{
		double		days = (years * 12 + months) * DBZ_DAYS_PER_MONTH + iv->day;
		double		secs = (((days * 24 + hours) * 60) + minutes) * 60 + seconds;

		appendStringInfo(buf, INT64_FORMAT, (int64) (secs * 1e6));
	}
}

/*
 * io.debezium.data.Bits: the bit string's value, least significant byte
 * first, in as many bytes as it takes (Java's BitSet.toByteArray()).
 */
static void
append_bits(StringInfo buf, VarBit *bits)
{
	int			n = VARBITLEN(bits);
	unsigned char *bytes = palloc0(n / 8 + 1);
	int			nbytes = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		/* bit i of the value is the string's (n - 1 - i)th */
		int			pos = n - 1 - i;

		if (VARBITS(bits)[pos / 8] & (0x80 >> (pos % 8)))
		{
			bytes[i / 8] |= 1 << (i % 8);
			nbytes = i / 8 + 1;
		}
	}
	append_bytes(buf, bytes, nbytes, KFDW_BINARY_BYTES);
}

/*
 * An hstore as a JSON object, from its text form ("k"=>"v", "n"=>NULL).
 */
static void
append_hstore(StringInfo buf, const char *text)
{
	const char *p = text;
	bool		first = true;
	StringInfoData item;

	initStringInfo(&item);
	appendStringInfoChar(buf, '{');
	while (*p)
	{
		int			i;

		for (i = 0; i < 2; i++)
		{
			while (*p == ' ' || *p == ',')
				p++;
			if (i == 1)
			{
				if (strncmp(p, "=>", 2) != 0)
					elog(ERROR, "unexpected hstore output \"%s\"", text);
				p += 2;
			}
			if (i == 1 && strncmp(p, "NULL", 4) == 0)
			{
				appendStringInfoString(buf, "null");
				p += 4;
				continue;
			}
			if (*p != '"')
				elog(ERROR, "unexpected hstore output \"%s\"", text);
			resetStringInfo(&item);
			for (p++; *p && *p != '"'; p++)
			{
				if (*p == '\\' && p[1])
					p++;
				appendStringInfoChar(&item, *p);
			}
			if (*p == '"')
				p++;
			if (i == 0)
			{
				if (!first)
					appendStringInfoChar(buf, ',');
				first = false;
				kfdw_json_append_string(buf, item.data);
				appendStringInfoChar(buf, ':');
			}
			else
				kfdw_json_append_string(buf, item.data);
		}
		while (*p == ' ' || *p == ',')
			p++;
	}
	appendStringInfoChar(buf, '}');
}

/* io.debezium.data.geometry.Point, with its WKB (little-endian) */
static void
append_point(StringInfo buf, Point *p)
{
	unsigned char wkb[21];
	uint32		type = 1;
	int			i;

	wkb[0] = 1;					/* little-endian */
	for (i = 0; i < 4; i++)
		wkb[1 + i] = (type >> (8 * i)) & 0xff;
	for (i = 0; i < 8; i++)
	{
		uint64		x;
		uint64		y;

		memcpy(&x, &p->x, 8);
		memcpy(&y, &p->y, 8);
		wkb[5 + i] = (x >> (8 * i)) & 0xff;
		wkb[13 + i] = (y >> (8 * i)) & 0xff;
	}
	appendStringInfoString(buf, "{\"x\":");
	append_double(buf, p->x);
	appendStringInfoString(buf, ",\"y\":");
	append_double(buf, p->y);
	appendStringInfoString(buf, ",\"wkb\":");
	append_bytes(buf, wkb, sizeof(wkb), KFDW_BINARY_BYTES);
	appendStringInfoString(buf, ",\"srid\":null}");
}

/* An array, its elements in order (several dimensions flattened) */
static void
append_array(StringInfo buf, KafkaCdcType *type, const KafkaCdcOptions *opts,
			 Datum value)
{
	ArrayType  *arr = DatumGetArrayTypeP(value);
	KafkaCdcType *elem = type->elem;
	Datum	   *values;
	bool	   *nulls;
	int			n;
	int			i;

	deconstruct_array(arr, ARR_ELEMTYPE(arr), elem->typlen, elem->typbyval,
					  elem->typalign, &values, &nulls, &n);
	appendStringInfoChar(buf, '[');
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(buf, ',');
		if (nulls[i])
			appendStringInfoString(buf, "null");
		else
			kfdw_cdc_append_value(buf, elem, opts, values[i]);
	}
	appendStringInfoChar(buf, ']');
}
