// Copyright (c) kafka_fdw contributors
//
// test/java/KfdwJava.java: the Java kafka-clients side of test/t/407_real_java.pl
//
// Compiled by the test against the kafka-clients jar of the cluster's cache.
// Every mode prints one JSON object a line on stdout, in ASCII (whatever the
// locale); byte strings are printed as JSON strings of their UTF-8 text (the
// test uses only UTF-8 text) or null; stdin is read as UTF-8.
//
//   produce BOOTSTRAP TOPIC CODEC
//       write a fixed set of messages (keys, null keys, null values, headers
//       with null values and repeated names, explicit timestamps) with
//       compression.type CODEC in one batch; print each message as sent,
//       with the partition and offset of its acknowledgement
//   produce-keys BOOTSTRAP TOPIC
//       write one message per line of stdin (the line is the key, the value
//       is null) and print key and partition as the default partitioner chose
//   murmur2 PARTITIONS
//       print, per line of stdin (a key), toPositive(murmur2(key)) % PARTITIONS
//   consume BOOTSTRAP TOPIC COUNT
//       read the whole topic from the beginning (read_committed) until COUNT
//       messages came, and print each

import java.nio.charset.StandardCharsets;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.Utils;

public class KfdwJava
{
	static String str(byte[] b)
	{
		if (b == null)
			return "null";
		return quote(new String(b, StandardCharsets.UTF_8));
	}

	static String quote(String s)
	{
		StringBuilder sb = new StringBuilder("\"");
		for (char c : s.toCharArray())
		{
			if (c == '"' || c == '\\')
				sb.append('\\').append(c);
			else if (c < 0x20 || c > 0x7e)
				sb.append(String.format("\\u%04x", (int) c));
			else
				sb.append(c);
		}
		return sb.append('"').toString();
	}

	static byte[] bytes(String s)
	{
		return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
	}

	static String headersJson(Iterable<Header> headers)
	{
		StringBuilder sb = new StringBuilder("[");
		boolean first = true;
		for (Header h : headers)
		{
			if (!first)
				sb.append(',');
			first = false;
			sb.append('[').append(quote(h.key())).append(',').append(str(h.value())).append(']');
		}
		return sb.append(']').toString();
	}

	static Properties producerProps(String bootstrap)
	{
		Properties p = new Properties();
		p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
		p.put(ProducerConfig.ACKS_CONFIG, "all");
		p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
		p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
		p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
		return p;
	}

	static List<String> stdinLines() throws Exception
	{
		BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
		List<String> lines = new ArrayList<>();
		String line;
		while ((line = r.readLine()) != null)
			lines.add(line);
		return lines;
	}

	static void produce(String bootstrap, String topic, String codec) throws Exception
	{
		Properties p = producerProps(bootstrap);
		p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
		// one batch: everything is sent together on flush()
		p.put(ProducerConfig.LINGER_MS_CONFIG, "60000");
		p.put(ProducerConfig.BATCH_SIZE_CONFIG, "1048576");
		long ts0 = 1700000000000L;
		List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
		for (int i = 0; i < 20; i++)
		{
			RecordHeaders h = new RecordHeaders();
			h.add("codec", bytes(codec));
			h.add("seq", bytes(Integer.toString(i)));
			if (i % 3 == 0)
				h.add("nothing", null);
			if (i % 4 == 0)
			{
				h.add("dup", bytes("first " + i));
				h.add("dup", bytes("second " + i));
				h.add("dup", null);
			}
			String key = (i % 5 == 4) ? null : codec + "-key-" + i;
			String value = (i % 7 == 6) ? null
				: "{\"n\": " + i + ", \"codec\": \"" + codec + "\", \"text\": \"h\u00e9llo \u2603 " + "x".repeat(i * 10) + "\"}";
			// records with and without a header
			Iterable<Header> hs = (i == 1) ? new RecordHeaders() : h;
			records.add(new ProducerRecord<>(topic, i % 2, ts0 + i * 1000L + 7, bytes(key), bytes(value), hs));
		}
		List<Future<RecordMetadata>> futures = new ArrayList<>();
		try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p))
		{
			for (ProducerRecord<byte[], byte[]> r : records)
				futures.add(producer.send(r));
			producer.flush();
			for (int i = 0; i < records.size(); i++)
			{
				ProducerRecord<byte[], byte[]> r = records.get(i);
				RecordMetadata md = futures.get(i).get();
				System.out.println("{\"partition\":" + md.partition() + ",\"offset\":" + md.offset()
					+ ",\"timestamp\":" + r.timestamp() + ",\"key\":" + str(r.key())
					+ ",\"value\":" + str(r.value()) + ",\"headers\":" + headersJson(r.headers()) + "}");
			}
		}
	}

	static void produceKeys(String bootstrap, String topic) throws Exception
	{
		List<String> keys = stdinLines();
		List<Future<RecordMetadata>> futures = new ArrayList<>();
		try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerProps(bootstrap)))
		{
			for (String k : keys)
				futures.add(producer.send(new ProducerRecord<>(topic, bytes(k), null)));
			producer.flush();
			for (int i = 0; i < keys.size(); i++)
				System.out.println("{\"key\":" + quote(keys.get(i)) + ",\"partition\":"
					+ futures.get(i).get().partition() + "}");
		}
	}

	static void murmur2(int partitions) throws Exception
	{
		for (String k : stdinLines())
			System.out.println("{\"key\":" + quote(k) + ",\"partition\":"
				+ (Utils.toPositive(Utils.murmur2(bytes(k))) % partitions) + "}");
	}

	static void consume(String bootstrap, String topic, int count) throws Exception
	{
		Properties p = new Properties();
		p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
		p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
		p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
		p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
		p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
		int seen = 0;
		long deadline = System.currentTimeMillis() + 60000;
		try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p))
		{
			List<TopicPartition> parts = new ArrayList<>();
			for (PartitionInfo pi : consumer.partitionsFor(topic))
				parts.add(new TopicPartition(topic, pi.partition()));
			consumer.assign(parts);
			consumer.seekToBeginning(parts);
			while (seen < count && System.currentTimeMillis() < deadline)
			{
				for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500)))
				{
					seen++;
					System.out.println("{\"partition\":" + r.partition() + ",\"offset\":" + r.offset()
						+ ",\"timestamp\":" + r.timestamp() + ",\"timestampType\":" + quote(r.timestampType().toString())
						+ ",\"key\":" + str(r.key()) + ",\"value\":" + str(r.value())
						+ ",\"headers\":" + headersJson(r.headers()) + "}");
				}
			}
		}
		if (seen < count)
		{
			System.err.println("only " + seen + " of " + count + " messages in " + topic);
			System.exit(1);
		}
	}

	public static void main(String[] args) throws Exception
	{
		switch (args[0])
		{
			case "produce":
				produce(args[1], args[2], args[3]);
				break;
			case "produce-keys":
				produceKeys(args[1], args[2]);
				break;
			case "murmur2":
				murmur2(Integer.parseInt(args[1]));
				break;
			case "consume":
				consume(args[1], args[2], Integer.parseInt(args[3]));
				break;
			default:
				System.err.println("unknown mode " + args[0]);
				System.exit(2);
		}
	}
}
