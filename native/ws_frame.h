// RFC 6455 framing for the native WebSocket data paths (issue 24): the
// incremental reader of one connection's byte stream and the header writer.
// Plain C++: no N-API, no system calls, so the fuzz target (fuzz/) links it
// alone. Every byte here comes from a peer we do not trust.
//
// - The reader owns one buffer per connection. read(2) lands at ReadPtr();
//   Next() hands out whole messages IN PLACE (unmasked there), so a batch of
//   frames is walked where it was read, with no copy. A fragmented data
//   message is the exception: its fragments are gathered in a second buffer
//   (browsers and ws never fragment what they send us, so it is rare).
// - Bounds: a data message (all its fragments) is at most max_message bytes;
//   a control frame at most 125, unfragmented (5.5). The buffer holds at most
//   one frame header, max_message payload bytes and kReadRoom more for the
//   next read, so a peer costs at most about 2 * max_message + kReadRoom
//   bytes, whatever it sends; the buffers grow to that only when a message
//   needs it, never per frame.
// - Anything RFC 6455 calls a failure fails the connection: Next() returns
//   kError once and for good, with the close code to send (1002, 1007, 1009)
//   and a reason. No extension is negotiated, so a set RSV bit fails it.
// - Role: a server's peer must mask every frame, a client's peer must not
//   (5.1). A zero mask is a mask: unmasking it is skipped.
// - Text payloads are NOT checked for UTF-8 here: they go up to JS, which
//   checks them (buffer.isUtf8) before parsing, as ws would. A close frame's
//   reason (123 bytes at most) is: one that is not UTF-8 fails with 1007.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tapswitch {
namespace ws {

enum Opcode : uint8_t { kContinuation = 0, kText = 1, kBinary = 2, kClose = 8, kPing = 9, kPong = 10 };

enum class Role { kServer, kClient };

constexpr uint16_t kCloseNormal = 1000;
constexpr uint16_t kCloseProtocolError = 1002;
constexpr uint16_t kCloseInvalidData = 1007;
constexpr uint16_t kCloseTooBig = 1009;

// Longest header: 2 bytes, a 64-bit length, a mask.
constexpr size_t kMaxHeader = 14;
// Largest control payload (5.5).
constexpr size_t kMaxControl = 125;
// Room kept free after a partial frame for the next read(2), at most; a
// connection starts with kMinReadRoom and doubles it each time a read fills
// all of it, so an idle port holds a few KiB and a busy one reads 64 KiB.
constexpr size_t kReadRoom = 64 << 10;
constexpr size_t kMinReadRoom = 4 << 10;

// A whole message: text or binary (fragments gathered), or one control
// frame. `data` is valid until the next call on the reader.
struct Message {
  uint8_t opcode = 0;
  uint8_t* data = nullptr;
  size_t len = 0;
};

class Reader {
 public:
  enum Result { kNeedMore = 0, kMessage = 1, kError = -1 };

  Reader(Role role, size_t max_message);

  // Where the next read(2) may land, and how many bytes it may take (never 0
  // unless failed). Moves what is still unparsed to the front first.
  uint8_t* ReadPtr(size_t* room);
  // `n` bytes were read at ReadPtr().
  void Commit(size_t n);
  // Copy bytes in (a prefill, the tests, the fuzzer), as if read: false,
  // and nothing copied, when they do not fit in ReadPtr()'s room (drain
  // Next() first; up to kReadRoom always fits then).
  bool Feed(const uint8_t* p, size_t n);

  // The next complete message, if the bytes so far hold one.
  Result Next(Message* m);

  bool failed() const { return close_code_ != 0; }
  // After kError: the close code to send and why (a static string).
  uint16_t close_code() const { return close_code_; }
  const char* reason() const { return reason_; }
  // Bytes read but not yet handed out (a partial frame or more).
  size_t buffered() const { return end_ - start_; }
  // Bytes this reader holds in memory now (both buffers' capacity).
  size_t footprint() const { return buf_.capacity() + frag_.capacity(); }

 private:
  Result Fail(uint16_t code, const char* why);

  Role role_;
  size_t max_message_;
  std::vector<uint8_t> buf_;
  size_t start_ = 0, end_ = 0;  // unparsed bytes: buf_[start_, end_)
  size_t read_room_ = kMinReadRoom;
  size_t read_to_ = 0;  // where the room ReadPtr() offered ends
  // A fragmented data message being gathered: its opcode (0 = none) and payload so far.
  uint8_t frag_opcode_ = 0;
  std::vector<uint8_t> frag_;
  uint16_t close_code_ = 0;
  const char* reason_ = "";
};

// The header of one frame with `len` payload bytes, written at `out` (room
// for kMaxHeader); `mask` is 4 bytes, or nullptr for an unmasked (server)
// frame. Returns the header's length.
size_t WriteHeader(uint8_t* out, uint8_t opcode, bool fin, uint64_t len, const uint8_t* mask);

// XOR `n` bytes at `p` with the mask, as if they started `offset` bytes into
// the payload (5.3).
void ApplyMask(uint8_t* p, size_t n, const uint8_t mask[4], size_t offset = 0);

// A close frame's payload (code, then a reason cut to fit 125 bytes) at
// `out` (room for kMaxControl); returns its length.
size_t ClosePayload(uint8_t* out, uint16_t code, const char* reason);

// A close code a peer may send (7.4 and IANA's registry, as ws): 1000-1003, 1007-1014, 3000-4999.
bool ValidCloseCode(uint16_t code);

}  // namespace ws
}  // namespace tapswitch
