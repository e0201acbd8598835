// The sending side of one native WebSocket connection (issue 24): whole
// messages out, written at once with writev(2) when nothing is queued, the
// unwritten rest queued in one bounded buffer, flushed when the socket is
// writable again. A message either goes out whole or not at all: the queue
// never holds part of one it refused, so frames on the wire never interleave.
//
// Not thread-safe: the owner serialises Send and Flush (a mutex per
// connection where two threads send; the lock then spans one non-blocking
// writev, never a wait).
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ws_frame.h"

namespace tapswitch {
namespace ws {

class Output {
 public:
  // `cap`: bytes the queue may hold (the port's high-water mark plus one message).
  explicit Output(size_t cap) : cap_(cap) {}

  enum Result { kSent = 0, kQueued = 1, kRefused = 2, kBroken = 3 };

  // One message: the header (masked with `mask` when not nullptr: the
  // caller has already masked the payload with it), then `n` parts of
  // `total` payload bytes. kSent: all written; kQueued: the rest waits for
  // Flush; kRefused: it would not fit (nothing written: count a drop);
  // kBroken: the socket failed (errno in error()).
  Result Send(int fd, uint8_t opcode, const uint8_t* mask, const struct iovec* parts, int n, size_t total);

  // Write what is queued. kSent: empty now; kQueued: more remains (poll for
  // POLLOUT); kBroken: the socket failed.
  Result Flush(int fd);

  size_t queued() const { return q_.size() - head_; }
  size_t cap() const { return cap_; }
  int error() const { return error_; }
  size_t footprint() const { return q_.capacity(); }

 private:
  void Queue(const struct iovec* iov, int n, size_t skip);

  size_t cap_;
  std::vector<uint8_t> q_;
  size_t head_ = 0;  // q_[head_, size) is unwritten
  int error_ = 0;
};

}  // namespace ws
}  // namespace tapswitch
