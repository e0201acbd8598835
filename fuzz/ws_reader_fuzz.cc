// libFuzzer target: the native WebSocket reader (native/ws_frame.cc) over a
// byte stream a peer chose, with a differential oracle. The same bytes go to
// three Readers: whole at once (Feed), in the pieces the input chooses
// (Feed at its split points), and one byte at a time (ReadPtr/Commit, as a
// read(2) of one byte would). They must hand out the same messages (opcode
// and bytes) in the same order and fail with the same close code: how TCP
// cut the stream must never change what the switch sees. Asserted (abort, so
// libFuzzer keeps the input) besides:
// - a data message is at most max_message bytes, a control payload at most
//   125, and every opcode handed out is one RFC 6455 defines;
// - footprint() stays within 2 * max_message + kReadRoom + slack, whatever
//   the stream (the per-port memory bound the header promises);
// - ReadPtr's room is never 0 unless the reader failed;
// - after kError, Next() stays kError with the same close code.
//
// Input: [flags][cap][splits][split offsets: u16 BE each][stream]. flags bit
// 0: the role (0 server: the peer must mask; 1 client: it must not); bits
// 1-2: the max_message class (0: cap, 0-255 bytes; 1: 125 + 16 * cap; 2: 64
// KiB; 3: 1 MiB). splits % 8 offsets follow. fuzz/make-corpus.mjs writes
// seeds in this layout; scripts/fuzz.sh runs it.
#include <string.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../native/ws_frame.h"

using tapswitch::ws::Message;
using tapswitch::ws::Reader;
using tapswitch::ws::Role;

#define FUZZ_CHECK(c)                                                       \
  do {                                                                      \
    if (!(c)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
      abort();                                                              \
    }                                                                       \
  } while (0)

namespace {

// What one reader handed out: the messages, then its close code (0: none).
struct Outcome {
  std::vector<uint8_t> ops;
  std::vector<std::vector<uint8_t>> payloads;
  uint16_t close_code = 0;
};

// Slack over 2 * max_message + kReadRoom: a frame header and allocator rounding.
constexpr size_t kSlack = 4096;

class Run {
 public:
  Run(Role role, size_t max_message) : r_(role, max_message), max_(max_message) {}

  // Drain every whole message; false once the reader failed.
  bool Drain() {
    for (;;) {
      Message m;
      const Reader::Result res = r_.Next(&m);
      CheckFootprint();
      if (res == Reader::kNeedMore) return true;
      if (res == Reader::kError) {
        FUZZ_CHECK(r_.failed());
        const uint16_t code = r_.close_code();
        FUZZ_CHECK(code == tapswitch::ws::kCloseProtocolError || code == tapswitch::ws::kCloseInvalidData ||
                   code == tapswitch::ws::kCloseTooBig);
        FUZZ_CHECK(r_.reason() != nullptr && r_.reason()[0] != '\0');
        // Failed for good: the same answer again, and no room to read into.
        FUZZ_CHECK(r_.Next(&m) == Reader::kError && r_.close_code() == code);
        size_t room = 1;
        FUZZ_CHECK(r_.ReadPtr(&room) == nullptr && room == 0);
        out_.close_code = code;
        return false;
      }
      FUZZ_CHECK(res == Reader::kMessage);
      const uint8_t op = m.opcode;
      FUZZ_CHECK(op == tapswitch::ws::kText || op == tapswitch::ws::kBinary || op == tapswitch::ws::kClose ||
                 op == tapswitch::ws::kPing || op == tapswitch::ws::kPong);
      if (op & 0x8) {
        FUZZ_CHECK(m.len <= tapswitch::ws::kMaxControl);
      } else {
        FUZZ_CHECK(m.len <= max_);
      }
      FUZZ_CHECK(m.len == 0 || m.data != nullptr);
      // Copied now: `data` is valid until the next call (ASan checks every byte is the reader's).
      out_.ops.push_back(op);
      out_.payloads.emplace_back(m.data, m.data + m.len);
    }
  }

  // Feed `n` bytes in one Feed if it takes them, else through ReadPtr's room.
  bool FeedAll(const uint8_t* p, size_t n) {
    if (r_.Feed(p, n)) return Drain();
    // Refused only when it does not fit: then it goes in as reads would put it.
    size_t room = 0;
    uint8_t* at = r_.ReadPtr(&room);
    FUZZ_CHECK(at != nullptr && room > 0 && room < n);
    while (n > 0) {
      at = r_.ReadPtr(&room);
      FUZZ_CHECK(at != nullptr && room > 0);
      const size_t k = std::min(room, n);
      memcpy(at, p, k);
      r_.Commit(k);
      p += k;
      n -= k;
      if (!Drain()) return false;
    }
    return true;
  }

  // One byte per read(2).
  bool ByteAtATime(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; i++) {
      size_t room = 0;
      uint8_t* at = r_.ReadPtr(&room);
      FUZZ_CHECK(at != nullptr && room > 0);
      *at = p[i];
      r_.Commit(1);
      if (!Drain()) return false;
    }
    return true;
  }

  const Outcome& outcome() const { return out_; }

 private:
  void CheckFootprint() const { FUZZ_CHECK(r_.footprint() <= 2 * max_ + tapswitch::ws::kReadRoom + kSlack); }

  Reader r_;
  size_t max_;
  Outcome out_;
};

void Same(const Outcome& a, const Outcome& b) {
  FUZZ_CHECK(a.ops.size() == b.ops.size());
  FUZZ_CHECK(a.ops == b.ops);
  FUZZ_CHECK(a.payloads == b.payloads);
  FUZZ_CHECK(a.close_code == b.close_code);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const Role role = (data[0] & 1) ? Role::kClient : Role::kServer;
  const size_t caps[4] = {data[1], size_t(125) + 16 * size_t(data[1]), size_t(64) << 10, size_t(1) << 20};
  const size_t max_message = caps[(data[0] >> 1) & 3];
  const size_t nsplits = data[2] % 8;
  size_t at = 3;
  if (size < at + 2 * nsplits) return 0;
  std::vector<size_t> cuts;
  for (size_t i = 0; i < nsplits; i++, at += 2) cuts.push_back((size_t(data[at]) << 8) | data[at + 1]);
  const uint8_t* s = data + at;
  const size_t n = size - at;
  for (size_t& c : cuts) c = n == 0 ? 0 : c % (n + 1);
  std::sort(cuts.begin(), cuts.end());
  cuts.push_back(n);

  // Whole at once (in kReadRoom pieces past that: Feed promises no more room to a fresh reader).
  Run whole(role, max_message);
  for (size_t off = 0; off < n;) {
    const size_t k = std::min(n - off, tapswitch::ws::kReadRoom);
    if (!whole.FeedAll(s + off, k)) break;
    off += k;
  }
  // At the input's split points.
  Run split(role, max_message);
  for (size_t i = 0, from = 0; i < cuts.size(); from = cuts[i], i++) {
    if (cuts[i] > from && !split.FeedAll(s + from, cuts[i] - from)) break;
  }
  // One byte per read.
  Run bytes(role, max_message);
  bytes.ByteAtATime(s, n);

  Same(whole.outcome(), split.outcome());
  Same(whole.outcome(), bytes.outcome());
  return 0;
}
