// One native WebSocket connection (issue 24): the socket fd a thread owns
// (a dup of the one Node's socket had), its reader and its sender. Shared by
// the agent's link (ws_link) and switchd's fast path (datapath): the thread
// reads and parses; sends come from the thread and from JS, so Send and
// Flush take tx_mu, held across one non-blocking sendmsg at most.
#pragma once

#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include <mutex>

#include "ws_frame.h"
#include "ws_output.h"

namespace tapswitch {
namespace ws {

class Conn {
 public:
  Conn(int fd, Role role, size_t max_message, size_t tx_cap) : fd_(fd), rx_(role, max_message), tx_(tx_cap) {}
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  int fd() const { return fd_; }
  Reader& rx() { return rx_; }

  // Read once into the reader (the thread's alone): bytes read, 0 at EOF, or
  // -errno (-EAGAIN: nothing now). Drain rx().Next() before the next call.
  ssize_t ReadOnce() {
    size_t room;
    uint8_t* at = rx_.ReadPtr(&room);
    if (at == nullptr || room == 0) return -EPROTO;
    ssize_t r;
    do r = ::read(fd_, at, room);
    while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    rx_.Commit(static_cast<size_t>(r));
    return r;
  }

  Output::Result Send(uint8_t opcode, const uint8_t* mask, const struct iovec* parts, int n, size_t total) {
    std::lock_guard<std::mutex> g(tx_mu_);
    return tx_.Send(fd_, opcode, mask, parts, n, total);
  }
  Output::Result Flush() {
    std::lock_guard<std::mutex> g(tx_mu_);
    return tx_.Flush(fd_);
  }
  size_t Queued() {
    std::lock_guard<std::mutex> g(tx_mu_);
    return tx_.queued();
  }
  size_t Footprint() {
    std::lock_guard<std::mutex> g(tx_mu_);
    return rx_.footprint() + tx_.footprint();
  }

 private:
  int fd_;
  Reader rx_;
  std::mutex tx_mu_;
  Output tx_;
};

}  // namespace ws
}  // namespace tapswitch
