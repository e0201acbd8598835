// libFuzzer target: the batch walk (native/batch.h ForEachRecord) over bytes
// a peer chose. JS hands the addon a batch it did not look inside, so every
// length in it is hostile. Asserted (abort, so libFuzzer keeps the input):
// - every record handed out lies inside [off, end) of the input, and the
//   records are back to back from `off` (nothing skipped, nothing reread);
// - `took` counts exactly the records whose write returned true;
// - TX_MALFORMED is counted once iff the walk stopped short of `end`, and no
//   other counter moves.
// Input: two bytes choose where the batch starts, one byte which records the
// writer refuses; the rest is the batch. scripts/fuzz.sh runs it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "../native/batch.h"

#define FUZZ_CHECK(c)                                                       \
  do {                                                                      \
    if (!(c)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                              \
    }                                                                       \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const size_t body = size - 3;
  const uint8_t* p = data + 3;  // the batch: exactly the rest of libFuzzer's buffer, so ASan sees any overread
  const size_t off = ((size_t(data[0]) << 8) | data[1]) % (body + 1);
  const uint8_t refuse = data[2];  // bit i: refuse the record i % 8

  double stats[tapswitch::STAT_COUNT] = {};
  size_t next = off, records = 0, accepted = 0;
  const uint32_t took = tapswitch::ForEachRecord(p, off, body, stats, [&](const uint8_t* payload, size_t len) {
    // Back to back: this record's length sits right before its payload, at `next`.
    FUZZ_CHECK(payload == p + next + tapswitch::kRecordHeader);
    FUZZ_CHECK(len <= body - (next + tapswitch::kRecordHeader));
    FUZZ_CHECK(len == tapswitch::ReadBE32(p + next));
    // Touch every byte handed out: ASan aborts on one outside the input.
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < len; i++) sink ^= payload[i];
    (void)sink;
    next += tapswitch::kRecordHeader + len;
    const bool ok = ((refuse >> (records++ % 8)) & 1) == 0;
    if (ok) accepted++;
    return ok;
  });
  FUZZ_CHECK(took == accepted);
  FUZZ_CHECK(next <= body);
  // Stopped short of the end <=> one malformed record counted.
  FUZZ_CHECK(stats[tapswitch::TX_MALFORMED] == (next < body ? 1 : 0));
  for (int i = 0; i < tapswitch::STAT_COUNT; i++) {
    if (i != tapswitch::TX_MALFORMED) FUZZ_CHECK(stats[i] == 0);
  }
  // A stop is justified: what is left cannot hold its header or its payload.
  if (next < body) {
    FUZZ_CHECK(body - next < tapswitch::kRecordHeader ||
               tapswitch::ReadBE32(p + next) > body - next - tapswitch::kRecordHeader);
  }
  return 0;
}
