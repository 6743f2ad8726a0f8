/*-------------------------------------------------------------------------
 *
 * format.h
 *		  Message formats: what a foreign table's row looks like, and the decoding
 *		  of messages into rows and encoding of rows into messages
 *
 * IDENTIFICATION
 *		  src/format/format.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KFDW_FORMAT_H
#define KFDW_FORMAT_H

#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "access/attnum.h"
#include "compat.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "kafka/kafka.h"
#include "lib/stringinfo.h"
#include "utils/resowner.h"

/* The message formats of a foreign table's values */
typedef enum KafkaFormat
{
	KAFKA_FORMAT_JSON,
	KAFKA_FORMAT_CSV,
	KAFKA_FORMAT_RAW
} KafkaFormat;

/* What a foreign table column holds */
typedef enum KafkaColumnKind
{
	KAFKA_COL_DATA,				/* a field of the message value */
	KAFKA_COL_PARTITION,
	KAFKA_COL_OFFSET,
	KAFKA_COL_KEY,
	KAFKA_COL_TIMESTAMP,
	KAFKA_COL_HEADERS,
	KAFKA_COL_JUNK,				/* raw message that could not be parsed */
	KAFKA_COL_JUNK_ERROR		/* why it could not be parsed */
} KafkaColumnKind;

/* One attribute of a foreign table, as its options describe it */
typedef struct KafkaColumn
{
	AttrNumber	attnum;
	char	   *attname;
	char	   *json_name;		/* JSON key for a data column (json format) */
	Oid			typid;
	int32		typmod;
	KafkaColumnKind kind;
	bool		dropped;
	int			data_index;		/* 0-based position among data columns, or -1 */
	bool		force_not_null; /* csv: the null string is a value */
	bool		force_null;		/* csv: the null string is NULL, quoted too */
} KafkaColumn;

/* Everything the options of a foreign table and its columns say */
typedef struct KafkaTableOptions
{
	Oid			relid;
	Oid			serverid;
	char	   *topic;
	KafkaFormat format;
	char		delimiter;		/* csv */
	char		quote;			/* csv */
	char		escape;			/* csv */
	char	   *null_string;	/* csv: string that means NULL */
	bool		strict;
	bool		ignore_junk;
	int			batch_size;
	int			buffer_delay;

	int			natts;			/* including dropped attributes */
	KafkaColumn *columns;		/* indexed by attnum - 1 */
	int			ndata;			/* number of data columns */

	/* attnum of each meta column, or InvalidAttrNumber */
	AttrNumber	partition_attnum;
	AttrNumber	offset_attnum;
	AttrNumber	key_attnum;
	AttrNumber	timestamp_attnum;
	AttrNumber	headers_attnum;
	AttrNumber	junk_attnum;
	AttrNumber	junk_error_attnum;
} KafkaTableOptions;

/*
 * Decoding of message values into the columns of a row.  scan.c prepares a
 * KafkaDecoder per scan; the format files fill in the data columns.
 */
typedef struct KafkaColumnDecoder
{
	KafkaColumn *col;
	bool		needed;			/* read by the plan */
	FmgrInfo	infunc;
	Oid			ioparam;
	Oid			basetype;		/* type with domains looked through */
	char		category;		/* 'j' json, 'b' jsonb, 'x' bytea, 'a' array,
								 * 'c' composite, 's' anything else */
	bool		isolate;		/* input may hold resources when it fails: a
								 * junk error is caught in a subtransaction */
} KafkaColumnDecoder;

typedef struct KafkaDecoder
{
	KafkaTableOptions *opts;
	KafkaColumnDecoder *cols;	/* indexed by attnum - 1 */
	KafkaColumnDecoder **data;	/* data columns, by data_index */
	Datum	   *values;			/* of the row being made */
	bool	   *nulls;
	bool		tolerate_junk;	/* junk, junk_error or ignore_junk */
	char	   *junk_reason;	/* why the current message is junk, or NULL */
	const char *cur_column;		/* for the error context, or NULL */
	void	   *format_state;	/* owned by the format file */
	ResourceOwner input_owner;	/* of the column inputs caught without a
								 * subtransaction, or NULL */
} KafkaDecoder;

extern void kfdw_decoder_set(KafkaDecoder *dec, KafkaColumnDecoder *cd,
							 const char *str, bool json_text);
extern void kfdw_decoder_fail(KafkaDecoder *dec, KafkaColumnDecoder *cd,
							  const char *reason);

/* in encode.c */

/*
 * Encodes rows of a foreign table into Kafka messages.  The fields after
 * the first group hold the last encoded row; its buffers are reused.
 */
typedef struct KafkaEncoder
{
	KafkaTableOptions *opts;
	AttrNumber *data_attnums;	/* attnum of each data column, by data_index */
	char	  **json_prefixes;	/* json: "name": of each data column */
	FmgrInfo   *out_functions;	/* csv: output function of each data column */
	Oid		   *basetypids;		/* base type of each attribute, by attnum - 1 */

	bool		has_key;
	StringInfoData key;
	bool		has_value;		/* false: a null value (tombstone) */
	StringInfoData value;
	int			nheaders;
	StringInfoData headers;		/* encoded for kfdw_make_headers() */
	int32		partition;		/* RD_KAFKA_PARTITION_UA: not given */
	int64		timestamp;		/* ms since the Unix epoch, 0: not given */
	StringInfoData scratch;
} KafkaEncoder;

extern void kfdw_encoder_init(KafkaEncoder *enc, KafkaTableOptions *opts);
extern void kfdw_encode_row(KafkaEncoder *enc, TupleTableSlot *slot);
extern rd_kafka_headers_t *kfdw_make_headers(const char *data, int len,
											 int count);

/* in json.c */
/*
 * Deepest nesting of arrays and objects a JSON message (or a JSON value of
 * a raw message, a CSV field or a key) may have, the top-level object
 * counting as one: deeper ones are junk, before any recursive parser sees
 * them.
 */
#define KFDW_JSON_MAX_DEPTH 1000

extern void kfdw_decode_json(KafkaDecoder *dec, char *data, int len);
extern bool kfdw_json_depth_ok(const char *data, int len);
extern char *kfdw_json_to_literal(const char *json, Oid typid);

/* in csv.c */
extern void kfdw_decode_csv(KafkaDecoder *dec, const char *data, int len);

/* in raw.c */
extern void kfdw_decode_raw(KafkaDecoder *dec, const char *data, int len);
extern void kfdw_decoder_set_bytes(KafkaDecoder *dec, KafkaColumnDecoder *cd,
								   const char *data, int len);

/* in json_encode.c */
extern void kfdw_json_append_datum(StringInfo buf, Datum value, bool isnull,
								   Oid typid);
extern void kfdw_json_append_string(StringInfo buf, const char *str);
extern int	kfdw_set_encoding_gucs(void);
extern void kfdw_reset_encoding_gucs(int nestlevel);
extern void kfdw_set_encoding_session_gucs(void);

#endif							/* KFDW_FORMAT_H */
