/*-------------------------------------------------------------------------
 *
 * debezium_value.c
 *		  Column values back from Debezium's representations
 *
 * The inverse of src/cdc/value.c (and of what Debezium's PostgreSQL
 * connector writes): a field's JSON value, read by its Kafka Connect
 * schema when the event has one (the logical name says days, milli-,
 * micro- or nanoseconds, an ISO string, a decimal's unscaled bytes, ...),
 * otherwise by the target column's type as Debezium's default modes write
 * it (time.precision.mode=adaptive, decimal.handling.mode=precise,
 * binary.handling.mode=bytes; the options of debezium.c change that).
 * What no representation claims goes to the column type's input function
 * as its JSON text: text, enums, uuid, json, inet, ranges, composites, ...
 *
 * A value is made as the type Debezium's representation stands for (a
 * date from days, a timestamp from microseconds) and, unless that is the
 * column's type exactly, given to the column's input function as that
 * type's text, so that domains, typmods and other target types behave as
 * an INSERT of the text would.
 *
 * IDENTIFICATION
 *		  src/ingest/debezium_value.c
 *
 *-------------------------------------------------------------------------
 */
#include "ingest/debezium_int.h"

#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/int.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/cash.h"
#include "utils/date.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

/* from 1970-01-01 to PostgreSQL's epoch, 2000-01-01 */
#define DBZ_EPOCH_DAYS	(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE)
#define DBZ_EPOCH_USECS	(INT64CONST(946684800000000))

/* What Debezium sends for infinite timestamps, in microseconds */
#define DBZ_TS_INFINITY_US	INT64CONST(9223372036825200000)
#define DBZ_TS_NINFINITY_US INT64CONST(-9223372036832400000)

/* representations that no schema name gives, chosen by the column type */
#define DBZ_R_BYTES		(DBZ_L_TEXT + 1)	/* bytea: base64 or hex */
#define DBZ_R_HSTORE	(DBZ_L_TEXT + 2)	/* a map, or JSON text */
#define DBZ_R_BIT1		(DBZ_L_TEXT + 3)	/* bit(1) as a boolean */
#define DBZ_R_DECIMAL_TEXT (DBZ_L_TEXT + 4) /* decimal.handling.mode=string */
#define DBZ_R_ARRAY		(DBZ_L_TEXT + 5)
#define DBZ_R_PLAIN		(DBZ_L_TEXT + 6)	/* the input function */

static int	representation(const DbzOptions *opts, DbzType *type, DbzJson *v,
						   DbzField *fs);
static bool is_placeholder(const DbzOptions *opts, DbzJson *v);
static Datum typed(DbzType *type, Datum value, Oid typid);
static Datum from_text(DbzType *type, const char *text);
static Datum from_decimal_text(DbzType *type, const char *text);
static int64 json_int(DbzJson *v, const char *expected);
static const char *json_string(DbzJson *v, const char *expected);
static Datum date_value(DbzType *type, DbzJson *v);
static Datum time_value(DbzType *type, DbzJson *v, int64 per_us, int64 us_per);
static Datum timestamp_value(DbzType *type, DbzJson *v, int unit);
static char *iso_text(const char *s, bool strip_zone);
static bytea *base64_bytes(const char *s, bool quiet);
static bytea *hex_bytes(const char *s);
static char *unscaled_text(bytea *bytes, int scale);
static Datum decimal_value(DbzType *type, DbzJson *v, int scale);
static Datum bits_value(DbzType *type, DbzJson *v, DbzField *fs);
static Datum point_value(DbzType *type, DbzJson *v);
static Datum geometry_value(DbzType *type, DbzJson *v);
static Datum hstore_value(DbzType *type, DbzJson *v);
static DbzResult array_value(const DbzOptions *opts, DbzType *type,
							 DbzJson *v, DbzField *fs, Datum *result);

/*
 * The value of v for a column of type, by its field's schema fs (NULL
 * without one), in *result; or the outcome that there is none.
 */
DbzResult
kfdw_dbz_value(const DbzOptions *opts, DbzType *type, DbzJson *v,
			   DbzField *fs, Datum *result)
{
	if (v->type == DBZ_JSON_NULL)
		return DBZ_NULL;
	if (is_placeholder(opts, v))
		return DBZ_ABSENT;

	switch (representation(opts, type, v, fs))
	{
		case DBZ_L_DATE:
			*result = date_value(type, v);
			break;
		case DBZ_L_TIME_MS:
			*result = time_value(type, v, 1, 1000);
			break;
		case DBZ_L_TIME_US:
			*result = time_value(type, v, 1, 1);
			break;
		case DBZ_L_TIME_NS:
			*result = time_value(type, v, 1000, 1);
			break;
		case DBZ_L_TS_MS:
			*result = timestamp_value(type, v, 1000);
			break;
		case DBZ_L_TS_US:
			*result = timestamp_value(type, v, 1);
			break;
		case DBZ_L_TS_NS:
			*result = timestamp_value(type, v, -1000);
			break;
		case DBZ_L_ZONED:
			*result = from_text(type, iso_text(json_string(v, "an ISO 8601 time with its zone"),
											   false));
			break;
		case DBZ_L_ISO_DATE:
			{
				const char *s = json_string(v, "an ISO 8601 date (io.debezium.time.IsoDate)");

				/* Debezium's infinite dates: snapshot, then stream */
				if (strcmp(s, "+292278994-08-16Z") == 0 ||
					strcmp(s, "-5877611-06-21Z") == 0)
					s = "infinity";
				else if (strcmp(s, "+292269055-12-02Z") == 0 ||
						 strcmp(s, "-5877611-06-22Z") == 0)
					s = "-infinity";
				else
					s = iso_text(s, true);
				*result = from_text(type, s);
			}
			break;
		case DBZ_L_ISO_TIME:
			*result = from_text(type, iso_text(json_string(v, "an ISO 8601 time (io.debezium.time.IsoTime)"),
											   true));
			break;
		case DBZ_L_ISO_TS:
			{
				const char *s = json_string(v, "an ISO 8601 timestamp (io.debezium.time.IsoTimestamp)");

				if (strcmp(s, "+294247-01-10T04:00:25.2Z") == 0)
					s = "infinity";
				else if (strcmp(s, "-290308-12-21T19:59:27.6Z") == 0)
					s = "-infinity";
				else
					s = iso_text(s, type->kind != DBZ_K_TIMESTAMPTZ);
				*result = from_text(type, s);
			}
			break;
		case DBZ_L_DECIMAL:
			*result = decimal_value(type, v, fs ? fs->scale :
									type->kind == DBZ_K_MONEY ? 2 :
									(((type->basemod - VARHDRSZ) & 0x7ff) ^ 1024) - 1024);
			break;
		case DBZ_L_VSDECIMAL:
			{
				DbzJson    *scale = kfdw_dbz_member(v, "scale");
				DbzJson    *value = kfdw_dbz_member(v, "value");

				if (v->type != DBZ_JSON_OBJECT || scale == NULL || value == NULL)
					kfdw_dbz_value_error("{\"scale\": ..., \"value\": ...} (io.debezium.data.VariableScaleDecimal)", v);
				*result = decimal_value(type, value,
										(int) json_int(scale, "an integer scale"));
			}
			break;
		case DBZ_L_MICRO_DURATION:
			{
				int64		us = json_int(v, "microseconds (io.debezium.time.MicroDuration)");
				Interval   *iv = palloc(sizeof(Interval));

				iv->month = 0;
				iv->day = (int32) (us / USECS_PER_DAY);
				iv->time = us % USECS_PER_DAY;
				*result = typed(type, IntervalPGetDatum(iv), INTERVALOID);
			}
			break;
		case DBZ_L_INTERVAL:
			*result = from_text(type, json_string(v, "an ISO 8601 duration (io.debezium.time.Interval)"));
			break;
		case DBZ_L_BITS:
			*result = bits_value(type, v, fs);
			break;
		case DBZ_L_POINT:
			*result = point_value(type, v);
			break;
		case DBZ_L_GEOMETRY:
			*result = geometry_value(type, v);
			break;
		case DBZ_R_BYTES:
			{
				const char *s = json_string(v, "bytes in base64");
				bytea	   *b;

				if (opts->binary_hex && (fs == NULL || fs->type == DBZ_T_STRING))
					b = hex_bytes(s);
				else
					b = base64_bytes(s, false);
				if (VARSIZE(b) - VARHDRSZ == opts->placeholder_len &&
					memcmp(VARDATA(b), opts->placeholder, opts->placeholder_len) == 0)
					return DBZ_ABSENT;
				*result = typed(type, PointerGetDatum(b), BYTEAOID);
			}
			break;
		case DBZ_R_HSTORE:
			*result = hstore_value(type, v);
			break;
		case DBZ_R_BIT1:
			*result = from_text(type, strcmp(v->str, "true") == 0 ? "1" : "0");
			break;
		case DBZ_R_DECIMAL_TEXT:
			*result = from_decimal_text(type, json_string(v, "a decimal number"));
			break;
		case DBZ_R_ARRAY:
			return array_value(opts, type, v, fs, result);
		default:
			/* the type's input function, given the JSON text */
			if (v->type == DBZ_JSON_OBJECT || v->type == DBZ_JSON_ARRAY)
				*result = from_text(type, pnstrdup(v->raw, v->rawlen));
			else if (type->kind == DBZ_K_MONEY && v->type == DBZ_JSON_NUMBER)
				*result = from_decimal_text(type, v->str);
			else
				*result = from_text(type, v->str);
			break;
	}
	return DBZ_VALUE;
}

/* The representation of v: its schema's logical name, else by the types */
static int
representation(const DbzOptions *opts, DbzType *type, DbzJson *v, DbzField *fs)
{
	DbzJsonType jt = v->type;
	bool		micro;

	if (jt == DBZ_JSON_ARRAY && type->kind == DBZ_K_ARRAY)
		return DBZ_R_ARRAY;
	if (fs != NULL && fs->logical != DBZ_L_NONE && fs->logical != DBZ_L_TEXT)
		return fs->logical;
	if (fs != NULL && fs->type == DBZ_T_BYTES)
		return DBZ_R_BYTES;

	switch (type->kind)
	{
		case DBZ_K_DATE:
			if (jt == DBZ_JSON_NUMBER)
				return DBZ_L_DATE;
			if (jt == DBZ_JSON_STRING)
				return DBZ_L_ISO_DATE;
			break;
		case DBZ_K_TIME:
			micro = opts->time_mode == DBZ_TIME_ADAPTIVE_MICRO ||
				(opts->time_mode == DBZ_TIME_ADAPTIVE &&
				 !(type->basemod >= 0 && type->basemod <= 3));
			if (jt == DBZ_JSON_NUMBER)
				return micro ? DBZ_L_TIME_US : DBZ_L_TIME_MS;
			if (jt == DBZ_JSON_STRING)
				return DBZ_L_ISO_TIME;
			break;
		case DBZ_K_TIMESTAMP:
		case DBZ_K_TIMESTAMPTZ:
			micro = opts->time_mode != DBZ_TIME_CONNECT &&
				!(type->basemod >= 0 && type->basemod <= 3);
			if (jt == DBZ_JSON_NUMBER)
				return micro ? DBZ_L_TS_US : DBZ_L_TS_MS;
			if (jt == DBZ_JSON_STRING)
				return type->kind == DBZ_K_TIMESTAMP ? DBZ_L_ISO_TS : DBZ_L_ZONED;
			break;
		case DBZ_K_TIMETZ:
			if (jt == DBZ_JSON_STRING)
				return DBZ_L_ZONED;
			break;
		case DBZ_K_INTERVAL:
			if (jt == DBZ_JSON_NUMBER)
				return DBZ_L_MICRO_DURATION;
			break;
		case DBZ_K_NUMERIC:
		case DBZ_K_MONEY:
			if (jt == DBZ_JSON_OBJECT)
				return DBZ_L_VSDECIMAL;
			if (jt != DBZ_JSON_STRING)
				break;
			/*
			 * a string: the decimal's bytes, unless it is text, or a
			 * double's NaN or infinity (decimal.handling.mode=double)
			 */
			if ((fs != NULL && (fs->type == DBZ_T_STRING ||
								fs->type == DBZ_T_FLOAT)) ||
				opts->decimal_mode == DBZ_DECIMAL_STRING ||
				(type->kind == DBZ_K_NUMERIC && type->basemod < (int32) VARHDRSZ))
				return DBZ_R_DECIMAL_TEXT;
			return DBZ_L_DECIMAL;
		case DBZ_K_FLOAT:
			if (jt == DBZ_JSON_STRING)
				return DBZ_R_DECIMAL_TEXT;
			break;
		case DBZ_K_BYTEA:
			if (jt == DBZ_JSON_STRING)
				return DBZ_R_BYTES;
			break;
		case DBZ_K_BIT:
		case DBZ_K_VARBIT:
			if (jt == DBZ_JSON_BOOL)
				return DBZ_R_BIT1;
			if (jt == DBZ_JSON_STRING)
				return DBZ_L_BITS;
			break;
		case DBZ_K_POINT:
			if (jt == DBZ_JSON_OBJECT)
				return DBZ_L_POINT;
			break;
		case DBZ_K_HSTORE:
			return DBZ_R_HSTORE;
		default:
			break;
	}
	return DBZ_R_PLAIN;
}

/* Is v the unchanged-TOAST placeholder, as a string or a one-element array? */
static bool
is_placeholder(const DbzOptions *opts, DbzJson *v)
{
	if (v->type == DBZ_JSON_ARRAY && v->n == 1)
		v = v->first;
	return v->type == DBZ_JSON_STRING &&
		strcmp(v->str, opts->placeholder) == 0;
}

/*
 * value, of type typid, for the column: as it is if that is the column's
 * type without typmod, else through the column's input function.
 */
static Datum
typed(DbzType *type, Datum value, Oid typid)
{
	Oid			output;
	bool		isvarlena;

	if (typid == type->typid && type->typmod < 0)
		return value;
	getTypeOutputInfo(typid, &output, &isvarlena);
	return from_text(type, OidOutputFunctionCall(output, value));
}

static Datum
from_text(DbzType *type, const char *text)
{
	return InputFunctionCall(&type->input, (char *) text, type->ioparam,
							 type->typmod);
}

/* A decimal as text (decimal.handling.mode=string, or a double's) */
static Datum
from_decimal_text(DbzType *type, const char *text)
{
	if (strcmp(text, "NAN") == 0)
		text = "NaN";
	else if (strcmp(text, "POSITIVE_INFINITY") == 0)
		text = "Infinity";
	else if (strcmp(text, "NEGATIVE_INFINITY") == 0)
		text = "-Infinity";
	if (type->kind == DBZ_K_MONEY)
	{
		/* money's input reads the locale's format; numeric's does not */
		Datum		num = DirectFunctionCall3(numeric_in, CStringGetDatum(text),
											  ObjectIdGetDatum(InvalidOid),
											  Int32GetDatum(-1));
		Datum		lim;

		/*
		 * A double (decimal.handling.mode=double) of money's largest
		 * values rounds past its range, by less than the double's own
		 * precision (16 at 2^63 cents): that is the limit.
		 */
		lim = DirectFunctionCall1(cash_numeric, CashGetDatum(PG_INT64_MAX));
		if (DatumGetBool(DirectFunctionCall2(numeric_gt, num, lim)) &&
			DatumGetBool(DirectFunctionCall2(numeric_le, num,
											 DirectFunctionCall2(numeric_add, lim,
																 DirectFunctionCall1(int4_numeric,
																					 Int32GetDatum(16))))))
			num = lim;
		lim = DirectFunctionCall1(cash_numeric, CashGetDatum(PG_INT64_MIN));
		if (DatumGetBool(DirectFunctionCall2(numeric_lt, num, lim)) &&
			DatumGetBool(DirectFunctionCall2(numeric_ge, num,
											 DirectFunctionCall2(numeric_sub, lim,
																 DirectFunctionCall1(int4_numeric,
																					 Int32GetDatum(16))))))
			num = lim;

		return typed(type, DirectFunctionCall1(numeric_cash, num), CASHOID);
	}
	return from_text(type, text);
}

void
kfdw_dbz_value_error(const char *expected, DbzJson *v)
{
	const char *got;

	switch (v->type)
	{
		case DBZ_JSON_OBJECT:
			got = "an object";
			break;
		case DBZ_JSON_ARRAY:
			got = "an array";
			break;
		case DBZ_JSON_STRING:
			got = psprintf("\"%.60s\"", v->str);
			break;
		default:
			got = psprintf("%.60s", v->str);
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("expected %s, got %s", expected, got)));
}

static int64
json_int(DbzJson *v, const char *expected)
{
	char	   *end;
	int64		n;

	if (v->type != DBZ_JSON_NUMBER)
		kfdw_dbz_value_error(expected, v);
	errno = 0;
	n = strtoi64(v->str, &end, 10);
	if (errno != 0 || *end != '\0')
		kfdw_dbz_value_error(expected, v);
	return n;
}

static const char *
json_string(DbzJson *v, const char *expected)
{
	if (v->type != DBZ_JSON_STRING)
		kfdw_dbz_value_error(expected, v);
	return v->str;
}

/* io.debezium.time.Date, connect's Date: days since 1970-01-01 */
static Datum
date_value(DbzType *type, DbzJson *v)
{
	int64		days = json_int(v, "a number of days (io.debezium.time.Date)");
	DateADT		d;

	/* Debezium's infinite dates: stream (Java's int overflow), snapshot */
	if (days == -2147472692 || days == -622191234)
		DATE_NOEND(d);
	else if (days == -2147472691 || days == -625821272)
		DATE_NOBEGIN(d);
	else
	{
		d = (DateADT) (days - DBZ_EPOCH_DAYS);
		if (days - DBZ_EPOCH_DAYS != (int64) d || !IS_VALID_DATE(d))
			kfdw_dbz_value_error("a number of days in the range of date", v);
	}
	return typed(type, DateADTGetDatum(d), DATEOID);
}

/* a time of day: v * per_us / us_per is microseconds since midnight */
static Datum
time_value(DbzType *type, DbzJson *v, int64 us_per, int64 per_us)
{
	int64		n = json_int(v, "a time of day since midnight (io.debezium.time.Time or MicroTime)");
	TimeADT		t;

	if (us_per > 1)
		t = n / us_per;
	else
		t = n * per_us;
	if (t < 0 || t > USECS_PER_DAY || (per_us > 1 && n > USECS_PER_DAY))
		kfdw_dbz_value_error("a time of day since midnight", v);
	return typed(type, TimeADTGetDatum(t), TIMEOID);
}

/*
 * A timestamp since 1970 in milliseconds (unit 1000), microseconds (1) or
 * nanoseconds (-1000), the datetime read as UTC; for a timestamptz column
 * that instant.
 */
static Datum
timestamp_value(DbzType *type, DbzJson *v, int unit)
{
	int64		n = json_int(v, "a timestamp since 1970 (io.debezium.time.Timestamp or MicroTimestamp)");
	int64		us;
	Timestamp	ts;

	if (unit == -1000)
		us = n / 1000 - (n % 1000 < 0 ? 1 : 0); /* floor */
	else if (pg_mul_s64_overflow(n, unit, &us))
		kfdw_dbz_value_error("a timestamp in the range of timestamp", v);

	if (n == DBZ_TS_INFINITY_US / unit && (unit == 1 || unit == 1000))
		TIMESTAMP_NOEND(ts);
	else if (n == DBZ_TS_NINFINITY_US / unit && (unit == 1 || unit == 1000))
		TIMESTAMP_NOBEGIN(ts);
	else if (pg_sub_s64_overflow(us, DBZ_EPOCH_USECS, &ts) ||
			 !IS_VALID_TIMESTAMP(ts))
		kfdw_dbz_value_error("a timestamp in the range of timestamp", v);
	return typed(type, TimestampGetDatum(ts),
				 type->kind == DBZ_K_TIMESTAMPTZ ? TIMESTAMPTZOID : TIMESTAMPOID);
}

/*
 * An ISO 8601 date, time or timestamp as Java writes it, as PostgreSQL
 * reads it: a year with a sign ("+10000", "-0043": astronomical, 44 BC),
 * and without the zone "Z" if strip_zone.
 */
static char *
iso_text(const char *s, bool strip_zone)
{
	StringInfoData buf;
	int			len = strlen(s);
	bool		bc = false;

	initStringInfo(&buf);
	if (strip_zone && len > 0 && s[len - 1] == 'Z')
		len--;
	if (len > 0 && s[0] == '+')
	{
		s++;
		len--;
	}
	else if (len > 1 && s[0] == '-' && isdigit((unsigned char) s[1]))
	{
		char	   *end;
		long		year = strtol(s + 1, &end, 10);

		/* astronomical year -y is 1 + y BC */
		appendStringInfo(&buf, "%04ld", year + 1);
		len -= end - s;
		s = end;
		bc = true;
	}
	else if (len >= 4 && strncmp(s, "0000", 4) == 0 && (len == 4 || s[4] == '-'))
	{
		appendStringInfoString(&buf, "0001");
		s += 4;
		len -= 4;
		bc = true;
	}
	appendBinaryStringInfo(&buf, s, len);
	if (bc)
		appendStringInfoString(&buf, " BC");
	return buf.data;
}

/* Bytes in base64, either alphabet (URL-safe too), padding optional */
static bytea *
base64_bytes(const char *s, bool quiet)
{
	int			len = strlen(s);
	char	   *src = palloc(len + 4);
	bytea	   *b;
	int			n;
	int			i;

	for (i = 0; i < len; i++)
		src[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	while (len % 4 != 0)
		src[len++] = '=';
	b = palloc(VARHDRSZ + pg_b64_dec_len(len) + 1);
	n = pg_b64_decode(src, len, VARDATA(b), pg_b64_dec_len(len) + 1);
	if (n < 0)
	{
		if (quiet)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("expected bytes in base64, got \"%.60s\"", s)));
	}
	SET_VARSIZE(b, VARHDRSZ + n);
	return b;
}

/* Bytes in hex (binary.handling.mode=hex) */
static bytea *
hex_bytes(const char *s)
{
	int			len = strlen(s);
	bytea	   *b = palloc(VARHDRSZ + len / 2 + 1);
	int			n;

	if (len % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("expected bytes in hex, got \"%.60s\"", s)));
	n = hex_decode(s, len, VARDATA(b));
	SET_VARSIZE(b, VARHDRSZ + n);
	return b;
}

/*
 * A decimal's text from the bytes of its unscaled value (Java's
 * BigInteger.toByteArray(): two's complement, big-endian) and its scale.
 */
static char *
unscaled_text(bytea *bytes, int scale)
{
	int			n = VARSIZE(bytes) - VARHDRSZ;
	unsigned char *mag = palloc(Max(n, 1));
	bool		negative = n > 0 && (((unsigned char *) VARDATA(bytes))[0] & 0x80);
	char	   *digits = palloc(n * 3 + 2);	/* little-endian, 0..9 */
	int			ndigits = 1;
	StringInfoData buf;
	int			i;
	int			j;

	memcpy(mag, VARDATA(bytes), n);
	if (negative)
	{
		int			carry = 1;

		for (i = n - 1; i >= 0; i--)
		{
			int			b = (~mag[i] & 0xff) + carry;

			mag[i] = b & 0xff;
			carry = b >> 8;
		}
	}
	digits[0] = 0;
	for (i = 0; i < n; i++)
	{
		int			carry = mag[i];

		for (j = 0; j < ndigits; j++)
		{
			int			x = digits[j] * 256 + carry;

			digits[j] = x % 10;
			carry = x / 10;
		}
		while (carry > 0)
		{
			digits[ndigits++] = carry % 10;
			carry /= 10;
		}
	}
	while (ndigits > 1 && digits[ndigits - 1] == 0)
		ndigits--;

	initStringInfo(&buf);
	if (negative)
		appendStringInfoChar(&buf, '-');
	if (scale <= 0)
	{
		for (i = ndigits - 1; i >= 0; i--)
			appendStringInfoChar(&buf, '0' + digits[i]);
		if (!(ndigits == 1 && digits[0] == 0))
			for (i = 0; i < -scale; i++)
				appendStringInfoChar(&buf, '0');
		return buf.data;
	}
	if (ndigits <= scale)
	{
		appendStringInfoString(&buf, "0.");
		for (i = 0; i < scale - ndigits; i++)
			appendStringInfoChar(&buf, '0');
		for (i = ndigits - 1; i >= 0; i--)
			appendStringInfoChar(&buf, '0' + digits[i]);
		return buf.data;
	}
	for (i = ndigits - 1; i >= 0; i--)
	{
		appendStringInfoChar(&buf, '0' + digits[i]);
		if (i == scale)
			appendStringInfoChar(&buf, '.');
	}
	return buf.data;
}

/* org.apache.kafka.connect.data.Decimal: the unscaled value's bytes */
static Datum
decimal_value(DbzType *type, DbzJson *v, int scale)
{
	const char *s = json_string(v, "a decimal's unscaled bytes in base64 (org.apache.kafka.connect.data.Decimal)");
	bytea	   *b = base64_bytes(s, true);

	if (b == NULL)
		kfdw_dbz_value_error("a decimal's unscaled bytes in base64 (org.apache.kafka.connect.data.Decimal)", v);
	return from_decimal_text(type, unscaled_text(b, scale));
}

/*
 * io.debezium.data.Bits: the bits' value, least significant byte first;
 * as many bits as a bit(n) column has, else as the value needs.
 */
static Datum
bits_value(DbzType *type, DbzJson *v, DbzField *fs)
{
	const char *s = json_string(v, "bits in base64 (io.debezium.data.Bits)");
	bytea	   *b = base64_bytes(s, true);
	unsigned char *data;
	int			nbytes;
	int			nbits = 0;
	char	   *text;
	int			i;

	if (b == NULL)
		kfdw_dbz_value_error("bits in base64 (io.debezium.data.Bits)", v);
	data = (unsigned char *) VARDATA(b);
	nbytes = VARSIZE(b) - VARHDRSZ;
	for (i = 0; i < nbytes * 8; i++)
		if (data[i / 8] & (1 << (i % 8)))
			nbits = i + 1;
	if (type->kind == DBZ_K_BIT && type->basemod > 0)
		nbits = type->basemod;
	else if (type->kind != DBZ_K_VARBIT && fs != NULL && fs->length > 0 &&
			 fs->length < 1000000)
		nbits = fs->length;
	else if (nbits == 0)
		nbits = 1;
	text = palloc(nbits + 1);
	for (i = 0; i < nbits; i++)
	{
		/* bit i of the value is the string's (nbits - 1 - i)th */
		bool		set = i / 8 < nbytes && (data[i / 8] & (1 << (i % 8)));

		text[nbits - 1 - i] = set ? '1' : '0';
	}
	text[nbits] = '\0';
	return from_text(type, text);
}

/* io.debezium.data.geometry.Point: {"x", "y", "wkb", "srid"} */
static Datum
point_value(DbzType *type, DbzJson *v)
{
	DbzJson    *x = kfdw_dbz_member(v, "x");
	DbzJson    *y = kfdw_dbz_member(v, "y");

	if (x == NULL || y == NULL || x->str == NULL || y->str == NULL)
		kfdw_dbz_value_error("{\"x\": ..., \"y\": ...} (io.debezium.data.geometry.Point)", v);
	return from_text(type, psprintf("(%s,%s)", x->str, y->str));
}

/*
 * io.debezium.data.geometry.Geometry and Geography: {"wkb", "srid"}, to
 * the hex (E)WKB that PostGIS reads.
 */
static Datum
geometry_value(DbzType *type, DbzJson *v)
{
	DbzJson    *wkb = kfdw_dbz_member(v, "wkb");
	DbzJson    *srid = kfdw_dbz_member(v, "srid");
	bytea	   *b;
	StringInfoData buf;
	int			n;

	if (wkb == NULL || wkb->type != DBZ_JSON_STRING ||
		(b = base64_bytes(wkb->str, true)) == NULL)
		kfdw_dbz_value_error("{\"wkb\": ..., \"srid\": ...} (io.debezium.data.geometry.Geometry)", v);
	initStringInfo(&buf);
	if (srid != NULL && srid->type == DBZ_JSON_NUMBER)
		appendStringInfo(&buf, "SRID=%s;", srid->str);
	n = VARSIZE(b) - VARHDRSZ;
	enlargeStringInfo(&buf, n * 2 + 1);
	buf.len += hex_encode(VARDATA(b), n, buf.data + buf.len);
	buf.data[buf.len] = '\0';
	return from_text(type, buf.data);
}

/* hstore: a map (hstore.handling.mode=map) or its JSON as a string */
static Datum
hstore_value(DbzType *type, DbzJson *v)
{
	DbzJson    *obj = v;
	DbzJson    *m;
	StringInfoData buf;

	if (v->type == DBZ_JSON_STRING && v->str[0] == '{')
	{
		const char *schema;
		int			schemalen;

		obj = kfdw_dbz_parse_json(v->str, strlen(v->str), false, &schema,
								  &schemalen);
	}
	if (obj->type != DBZ_JSON_OBJECT)
	{
		if (v->type == DBZ_JSON_STRING)
			return from_text(type, v->str);
		kfdw_dbz_value_error("an object of strings (hstore)", v);
	}

	initStringInfo(&buf);
	for (m = obj->first; m != NULL; m = m->next)
	{
		const char *parts[2] = {m->key, m->str};
		int			i;

		if (m->type == DBZ_JSON_OBJECT || m->type == DBZ_JSON_ARRAY)
			kfdw_dbz_value_error("an object of strings (hstore)", v);
		if (buf.len > 0)
			appendStringInfoString(&buf, ", ");
		for (i = 0; i < 2; i++)
		{
			const char *p;

			if (i == 1)
				appendStringInfoString(&buf, "=>");
			if (i == 1 && m->type == DBZ_JSON_NULL)
			{
				appendStringInfoString(&buf, "NULL");
				continue;
			}
			appendStringInfoChar(&buf, '"');
			for (p = parts[i]; *p; p++)
			{
				if (*p == '"' || *p == '\\')
					appendStringInfoChar(&buf, '\\');
				appendStringInfoChar(&buf, *p);
			}
			appendStringInfoChar(&buf, '"');
		}
	}
	return from_text(type, buf.data);
}

/* A JSON array for an array column, element by element (one dimension) */
static DbzResult
array_value(const DbzOptions *opts, DbzType *type, DbzJson *v, DbzField *fs,
			Datum *result)
{
	DbzType    *elem = type->elem;
	Datum	   *elems = palloc(sizeof(Datum) * Max(v->n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(v->n, 1));
	DbzJson    *e;
	int			i = 0;
	int			dims[1];
	int			lbs[1] = {1};
	ArrayType  *arr;

	for (e = v->first; e != NULL; e = e->next, i++)
	{
		nulls[i] = false;
		switch (kfdw_dbz_value(opts, elem, e, fs ? fs->items : NULL, &elems[i]))
		{
			case DBZ_VALUE:
				break;
			case DBZ_NULL:
				nulls[i] = true;
				break;
			case DBZ_ABSENT:
				return DBZ_ABSENT;
		}
	}
	dims[0] = v->n;
	if (v->n == 0)
		arr = construct_empty_array(elem->typid);
	else
		arr = construct_md_array(elems, nulls, 1, dims, lbs, elem->typid,
								 elem->typlen, elem->typbyval, elem->typalign);
	*result = typed(type, PointerGetDatum(arr), type->base);
	return DBZ_VALUE;
}
