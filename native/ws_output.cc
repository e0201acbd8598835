// The bounded sender of one WebSocket connection (contract in ws_output.h).

#include "ws_output.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace tapswitch {
namespace ws {

namespace {

// Parts of one message at most (a header and the caller's parts).
constexpr int kMaxParts = 64;

}  // namespace

Output::Result Output::Send(int fd, uint8_t opcode, const uint8_t* mask, const struct iovec* parts, int n,
                            size_t total) {
  if (error_ != 0) return kBroken;
  if (n < 0 || n > kMaxParts - 1) return kRefused;
  size_t sum = 0;
  for (int i = 0; i < n; i++) sum += parts[i].iov_len;
  if (sum != total) return kRefused;  // a caller's mistake: never a header that lies about its payload
  uint8_t hdr[kMaxHeader];
  const size_t hlen = WriteHeader(hdr, opcode, true, total, mask);
  const size_t whole = hlen + total;
  // Whole or nothing: a message that would not fit behind what is queued is refused before a byte goes out.
  if (queued() + whole > cap_) return kRefused;
  struct iovec iov[kMaxParts];
  iov[0] = {hdr, hlen};
  for (int i = 0; i < n; i++) iov[i + 1] = parts[i];
  size_t sent = 0;
  if (queued() == 0) {
    ssize_t w;
    // MSG_NOSIGNAL: a peer that reset the connection must not kill the process with SIGPIPE.
    struct msghdr msg = {};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(n + 1);
    do w = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        error_ = errno;
        return kBroken;
      }
      w = 0;
    }
    sent = static_cast<size_t>(w);
    if (sent == whole) return kSent;
  }
  Queue(iov, n + 1, sent);
  return kQueued;
}

void Output::Queue(const struct iovec* iov, int n, size_t skip) {
  size_t add = 0;
  for (int i = 0; i < n; i++) add += iov[i].iov_len;
  add -= skip;
  // The buffer is reserved at cap_ the first time a socket pushes back (not per message). What
  // was written leaves the front only when the rest would not fit behind it, or when it is at
  // least as long as what remains: each byte is moved a bounded number of times, not once per
  // wake-up of a slow reader (a flush that writes a little, then a send).
  if (head_ > 0 && (q_.size() + add > cap_ || head_ >= queued())) {
    q_.erase(q_.begin(), q_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  if (q_.capacity() < cap_) q_.reserve(cap_);
  for (int i = 0; i < n; i++) {
    const uint8_t* p = static_cast<const uint8_t*>(iov[i].iov_base);
    size_t len = iov[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    p += skip;
    len -= skip;
    skip = 0;
    q_.insert(q_.end(), p, p + len);
  }
}

Output::Result Output::Flush(int fd) {
  if (error_ != 0) return kBroken;
  while (queued() > 0) {
    ssize_t w;
    do w = ::send(fd, q_.data() + head_, queued(), MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return kQueued;
      error_ = errno;
      return kBroken;
    }
    head_ += static_cast<size_t>(w);
  }
  q_.clear();
  head_ = 0;
  return kSent;
}

}  // namespace ws
}  // namespace tapswitch
