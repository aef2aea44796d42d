package registry.subscriber;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Follows the public label events on Kafka as the read-only {@code subscriber} principal,
 * as the subscriber guide (schemas/README.md) says, and folds them into the state of each
 * label record (clients/README.md).
 *
 * <p>Binary-mode CloudEvents: the attributes are {@code ce_*} headers, strings (numbers
 * too); the value is the JSON {@code data}. The fold is saved to the state file before the
 * consumer group's offsets are committed, so a crash in between redelivers records that
 * the per-subject position check then skips (delivery is at least once).
 *
 * <p>Usage: {@code LabelSubscriber --bootstrap HOST:PORT --topic T --group subscriber.x
 * --state FILE [--max-records N]}; the password is read from {@code CLR_SUBSCRIBER_PASSWORD}.
 * It reads until it has reached the end offsets the partitions had when it joined (or N
 * records), saves, commits and prints a summary as JSON.
 */
public final class LabelSubscriber {
  private static final ObjectMapper JSON = new ObjectMapper();

  private LabelSubscriber() {}

  public static void main(String[] args) throws IOException {
    Map<String, String> opts = options(args);
    String password = System.getenv("CLR_SUBSCRIBER_PASSWORD");
    if (password == null) {
      throw new IllegalArgumentException("CLR_SUBSCRIBER_PASSWORD is not set");
    }
    Path statePath = Path.of(require(opts, "state"));
    long maxRecords = Long.parseLong(opts.getOrDefault("max-records", "-1"));
    Fold fold = Fold.load(statePath);

    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, require(opts, "bootstrap"));
    props.put(ConsumerConfig.GROUP_ID_CONFIG, require(opts, "group"));
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
    props.put("security.protocol", opts.getOrDefault("security-protocol", "SASL_PLAINTEXT"));
    props.put("sasl.mechanism", "PLAIN");
    props.put(
        "sasl.jaas.config",
        "org.apache.kafka.common.security.plain.PlainLoginModule required username=\""
            + opts.getOrDefault("username", "subscriber")
            + "\" password=\""
            + password
            + "\";");

    long read = 0;
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
      consumer.subscribe(List.of(require(opts, "topic")));
      Map<TopicPartition, Long> ends = null;
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      boolean stop = false;
      while (!stop) {
        if (System.nanoTime() > deadline) {
          throw new IllegalStateException("did not reach the end offsets within 60 s");
        }
        ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(500));
        if (ends == null && !consumer.assignment().isEmpty()) {
          ends = consumer.endOffsets(consumer.assignment());
        }
        Map<TopicPartition, OffsetAndMetadata> done = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> record : records) {
          fold.accept(headers(record), record.value());
          done.put(
              new TopicPartition(record.topic(), record.partition()),
              new OffsetAndMetadata(record.offset() + 1));
          read++;
          if (read == maxRecords) {
            stop = true; // part-way: the rest of this batch is not committed, so comes again
            break;
          }
        }
        fold.save(statePath); // first the fold, then the offsets
        if (!done.isEmpty()) {
          consumer.commitSync(done);
        }
        if (ends != null && reached(consumer, ends)) {
          stop = true;
        }
      }
    }
    ObjectNode summary = fold.summary();
    summary.put("read", read);
    System.out.println(JSON.writeValueAsString(summary));
  }

  private static boolean reached(KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> ends) {
    for (Map.Entry<TopicPartition, Long> end : ends.entrySet()) {
      if (consumer.assignment().contains(end.getKey())
          && consumer.position(end.getKey()) < end.getValue()) {
        return false;
      }
    }
    return true;
  }

  private static Map<String, String> headers(ConsumerRecord<byte[], byte[]> record) {
    Map<String, String> out = new HashMap<>();
    for (Header h : record.headers()) {
      out.put(h.key(), new String(h.value(), StandardCharsets.UTF_8));
    }
    return out;
  }

  private static Map<String, String> options(String[] args) {
    Map<String, String> out = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (!args[i].startsWith("--")) {
        throw new IllegalArgumentException("expected --name value, got " + args[i]);
      }
      out.put(args[i].substring(2), args[i + 1]);
    }
    return out;
  }

  private static String require(Map<String, String> opts, String name) {
    String value = opts.get(name);
    if (value == null) {
      throw new IllegalArgumentException("missing --" + name);
    }
    return value;
  }

  /** The fold of clients/README.md, and what it needs to prove nothing was missed. */
  static final class Fold {
    private static final Map<String, String> STATUS =
        Map.of(
            "LabelAwarded", "awarded",
            "LabelRenewed", "renewed",
            "LabelExpired", "expired",
            "LabelWithdrawn", "withdrawn");
    final ObjectNode state;

    private Fold(ObjectNode state) {
      this.state = state;
    }

    static Fold load(Path path) throws IOException {
      if (Files.exists(path)) {
        return new Fold((ObjectNode) JSON.readTree(path.toFile()));
      }
      ObjectNode state = JSON.createObjectNode();
      state.putObject("labels");
      state.putArray("applied");
      state.put("skipped", 0);
      state.put("rejected", 0);
      return new Fold(state);
    }

    void save(Path path) throws IOException {
      Path tmp = path.resolveSibling(path.getFileName() + ".tmp");
      JSON.writeValue(tmp.toFile(), state);
      Files.move(tmp, path, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
          java.nio.file.StandardCopyOption.ATOMIC_MOVE);
    }

    /** Fold a record, or count it in {@code rejected} (and say why) when it is no valid label event. */
    void accept(Map<String, String> ce, byte[] value) {
      String problem;
      try {
        problem = apply(ce, value);
      } catch (IOException | RuntimeException error) {
        problem = error.toString();
      }
      if (problem != null) {
        state.put("rejected", state.path("rejected").asLong(0) + 1);
        System.err.println("rejected " + ce.get("ce_subject") + " " + ce.get("ce_id") + ": " + problem);
      }
    }

    /** Fold one label event; a reason when it is not one (nothing is changed then). */
    private String apply(Map<String, String> ce, byte[] value) throws IOException {
      String subject = ce.get("ce_subject");
      String type = ce.get("ce_type");
      String id = ce.get("ce_id");
      String at = ce.get("ce_globalposition");
      if (subject == null || type == null || id == null || at == null) {
        return "not a CloudEvent in binary mode (ce_id, ce_type, ce_subject, ce_globalposition)";
      }
      long position = Long.parseLong(at); // 64-bit: a larger number is refused
      long previous = Long.parseLong(ce.getOrDefault("ce_prevposition", "0"));
      if (position < 1 || previous < 0) {
        return "a position below its range";
      }
      JsonNode data = JSON.readTree(value);
      if (data == null || !data.isObject()) {
        return "the value is not a JSON object";
      }
      String[] parts = type.split("\\.");
      String name = parts.length > 1 ? parts[1] : "";
      String status = STATUS.get(name);
      boolean label = status != null || name.equals("LabelRecordCorrected");
      if (label) {
        String problem = invalid(subject, data);
        if (problem != null) {
          return problem;
        }
      }
      ObjectNode labels = (ObjectNode) state.get("labels");
      JsonNode known = labels.get(subject);
      if (known != null && known.get("position").asLong() >= position) {
        state.put("skipped", state.get("skipped").asLong() + 1); // a redelivery
        return null;
      }
      ((ArrayNode) state.get("applied")).addArray().add(position).add(previous);
      if (!label) {
        return null; // a type this client does not know: ignored, as the guide says
      }
      ObjectNode entry = known == null ? labels.putObject(subject) : (ObjectNode) known;
      entry.put("org_id", data.get("org_id").asText());
      entry.put("level", data.get("level").asText());
      if (status != null) {
        entry.put("status", status); // a correction changes the dates only
      }
      if (data.hasNonNull("valid_until")) {
        entry.put("valid_until", data.get("valid_until").asText());
      }
      entry.put("position", position);
      entry.put("events", entry.path("events").asLong(0) + 1);
      return null;
    }

    /** What the fold relies on: the subject is {@code <org_id>:<level>}, dates are dates. */
    private static String invalid(String subject, JsonNode data) {
      JsonNode org = data.get("org_id");
      JsonNode level = data.get("level");
      if (org == null || !org.isTextual() || level == null || !level.isTextual()) {
        return "no org_id or level";
      }
      if (!subject.equals(org.asText() + ":" + level.asText())) {
        return "the subject is not <org_id>:<level>";
      }
      JsonNode until = data.get("valid_until");
      if (until != null && !until.isNull()) {
        try {
          java.time.LocalDate.parse(until.asText());
        } catch (java.time.DateTimeException error) {
          return "valid_until is not a date";
        }
      }
      return null;
    }

    ObjectNode summary() {
      Set<Long> seen = new HashSet<>();
      for (JsonNode pair : state.get("applied")) {
        seen.add(pair.get(0).asLong());
      }
      ArrayNode missing = JSON.createArrayNode();
      for (JsonNode pair : state.get("applied")) {
        long previous = pair.get(1).asLong();
        if (previous != 0 && !seen.contains(previous)) {
          missing.add(previous);
        }
      }
      ObjectNode out = state.deepCopy();
      out.set("missing", missing);
      return out;
    }
  }
}
