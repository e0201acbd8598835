// tap-agent's native link: the thread (the design is ws_link.h's header).

#include "ws_link.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <chrono>

namespace tapswitch {
namespace wslink {

namespace {

// Random mask keys drawn per getrandom(2): 256 messages.
constexpr size_t kMaskPool = 1024;
// How long the end waits for a queued close frame to leave.
constexpr int kFlushMs = 1000;

}  // namespace

Link::Link(const Options& o)
    : o_(o),
      rx_(ws::Role::kClient, o.max_message),
      tx_(o.high_water + o.max_message + 4096),
      ev_cap_(2 * (o.max_message + kEventHeader)) {
  for (auto& c : link_) c.store(0);
  for (auto& c : tap_) c.store(0);
  burst_.resize(o.max_message);
}

Link::~Link() {
  Terminate();
  Join();
  if (efd_ >= 0) ::close(efd_);
  if (o_.sock_fd >= 0) ::close(o_.sock_fd);
}

int Link::Run(void (*notify)(void*), void* arg) {
  efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd_ < 0) return errno;
  notify_ = notify;
  notify_arg_ = arg;
  thread_ = std::thread([this] { Loop(); });
  return 0;
}

void Link::Start(bool vnet_records, uint32_t follow_busy, bool udp_runs, uint32_t coalesce_us) {
  vnet_records_.store(vnet_records);
  udp_runs_.store(udp_runs);
  coalesce_us_.store(coalesce_us);
  follow_busy_.store(follow_busy);
  {
    // Under tx_mu_, as the thread's gating of a text is: a Start() between its check and its gate
    // would otherwise leave the gate shut for good (the race harness found it).
    std::lock_guard<std::mutex> g(tx_mu_);
    started_.store(true);
    gated_.store(false);
  }
  Wake();
}

void Link::Terminate() {
  stop_.store(true);
  Wake();
}

void Link::Join() {
  if (thread_.joinable()) thread_.join();
}

void Link::Wake() {
  uint64_t one = 1;
  if (efd_ >= 0) {
    ssize_t r = ::write(efd_, &one, sizeof one);
    (void)r;
  }
}

size_t Link::Queued() {
  std::lock_guard<std::mutex> g(tx_mu_);
  return tx_.queued();
}

void Link::Stats(double* link, double* tap) const {
  for (int i = 0; i < L_COUNT; i++) link[i] = static_cast<double>(link_[i].load(std::memory_order_relaxed));
  for (int i = 0; i < STAT_COUNT; i++) tap[i] = static_cast<double>(tap_[i].load(std::memory_order_relaxed));
}

std::vector<uint8_t>& Link::TakeEvents() {
  size_t was;
  {
    std::lock_guard<std::mutex> g(ev_mu_);
    was = events_.size();
    draining_.clear();
    draining_.swap(events_);
  }
  if (was > ev_cap_ / 2) Wake();  // the thread may have stopped parsing for room
  return draining_;
}

void Link::PushEvent(uint8_t kind, uint16_t code, const uint8_t* p, size_t n) {
  {
    std::lock_guard<std::mutex> g(ev_mu_);
    const size_t at = events_.size();
    events_.resize(at + kEventHeader + n);
    events_[at] = kind;
    events_[at + 1] = static_cast<uint8_t>(code >> 8);
    events_[at + 2] = static_cast<uint8_t>(code);
    WriteBE32(&events_[at + 3], static_cast<uint32_t>(n));
    if (n > 0) memcpy(&events_[at + kEventHeader], p, n);
  }
  notify_(notify_arg_);
}

void Link::NextMask(uint8_t mask[4], std::vector<uint8_t>& pool, size_t& at) {
  if (o_.zero_mask) {
    memset(mask, 0, 4);
    return;
  }
  if (pool.size() != kMaskPool || at + 4 > kMaskPool) {
    pool.resize(kMaskPool);
    size_t got = 0;
    while (got < kMaskPool) {
      ssize_t r = getrandom(pool.data() + got, kMaskPool - got, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    // getrandom(2) blocks until the kernel's pool is ready and then does not fail; a kernel without it
    // (ENOSYS, before 3.17) gets keys from the clock: still never a reused all-zero key.
    for (size_t i = got; i < kMaskPool; i++)
      pool[i] = static_cast<uint8_t>(std::chrono::steady_clock::now().time_since_epoch().count() >> (i & 7));
    at = 0;
  }
  memcpy(mask, pool.data() + at, 4);
  at += 4;
}

int Link::SendControl(uint8_t opcode, const uint8_t* p, size_t n) {
  ws::Output::Result r;
  {
    std::lock_guard<std::mutex> g(tx_mu_);
    if (ended_.load()) return ws::Output::kBroken;
    if (close_sent_) return ws::Output::kRefused;
    js_buf_.assign(p, p + n);
    uint8_t mask[4];
    NextMask(mask, js_pool_, js_mask_at_);
    if (!o_.zero_mask) ws::ApplyMask(js_buf_.data(), n, mask);
    struct iovec iov = {js_buf_.data(), n};
    r = tx_.Send(o_.sock_fd, opcode, mask, &iov, n > 0 ? 1 : 0, n);
    if (opcode == ws::kClose && (r == ws::Output::kSent || r == ws::Output::kQueued)) close_sent_ = true;
  }
  // Our close opens the gate: the peer's close reply must be parsed (a bad welcome is closed this way).
  if (opcode == ws::kClose) gated_.store(false);
  // The thread polls for POLLOUT while bytes wait, and stops reading the TAP once our close is out.
  if (r != ws::Output::kSent || opcode == ws::kClose) Wake();
  return r;
}

// Under tx_mu_: a message of the thread's (masked here, in place). `data`: a
// burst, refused over the high-water mark or once our close frame is out.
ws::Output::Result Link::SendLocked(uint8_t opcode, uint8_t* payload, size_t n, bool data) {
  std::lock_guard<std::mutex> g(tx_mu_);
  if (close_sent_ && (data || opcode == ws::kClose)) return ws::Output::kRefused;
  if (data && tx_.queued() > o_.high_water) return ws::Output::kRefused;
  uint8_t mask[4];
  NextMask(mask, mask_pool_, mask_at_);
  if (!o_.zero_mask) ws::ApplyMask(payload, n, mask);
  struct iovec iov = {payload, n};
  ws::Output::Result r = tx_.Send(o_.sock_fd, opcode, mask, &iov, n > 0 ? 1 : 0, n);
  // Only a close that went out (or is queued to) counts: one refused over the cap must not stop
  // the thread's own close (an echo, 1002) from trying again.
  if (opcode == ws::kClose && (r == ws::Output::kSent || r == ws::Output::kQueued)) close_sent_ = true;
  return r;
}

// Our close frame (a parse failure, data before the welcome, the echo of the peer's).
void Link::CloseWith(uint16_t code, const char* reason) {
  uint8_t payload[ws::kMaxControl];
  const size_t n = code == 1005 ? 0 : ws::ClosePayload(payload, code, reason);
  SendLocked(ws::kClose, payload, n, false);
}

// The end: flush a queued close frame (bounded), shut the socket, tell JS. No fd is touched after this.
void Link::End(uint16_t code, const uint8_t* reason, size_t n) {
  if (ended_.load()) return;
  for (int waited = 0; !stop_.load() && waited < kFlushMs;) {
    ws::Output::Result r;
    {
      std::lock_guard<std::mutex> g(tx_mu_);
      r = tx_.Flush(o_.sock_fd);
    }
    if (r != ws::Output::kQueued) break;
    pollfd fds[2] = {{o_.sock_fd, POLLOUT, 0}, {efd_, POLLIN, 0}};
    if (::poll(fds, 2, 100) < 0 && errno != EINTR) break;
    // A wake-up for JS is not a writable socket: take it, so the next poll waits its 100 ms.
    if ((fds[1].revents & POLLIN) != 0) {
      uint64_t v;
      ssize_t k = ::read(efd_, &v, sizeof v);
      (void)k;
    }
    waited += 100;
  }
  ::shutdown(o_.sock_fd, SHUT_RDWR);
  {
    std::lock_guard<std::mutex> g(tx_mu_);
    ended_.store(true);
  }
  PushEvent(E_END, code, reason, n);
}

// One whole message from the switch. False once the link ended.
bool Link::HandleMessage(const ws::Message& m) {
  switch (m.opcode) {
    case ws::kBinary:
      if (!started_.load()) {
        // As Uplink did: frames before the welcome are a protocol error; the peer's close reply ends us.
        CloseWith(ws::kCloseProtocolError, "data before welcome");
        return true;
      }
      if (!Tiles(m.data, m.len)) {
        Count(link_, L_RX_MALFORMED, 1);
        return true;
      }
      Count(link_, L_RX_MESSAGES, 1);
      Count(link_, L_RX_BYTES, m.len);
      WriteBatch(m.data, m.len, vnet_records_.load());
      return true;
    case ws::kText:
      // The welcome: JS follows it (offload, the TAP's record format) before anything else is parsed.
      // Not once our close is out (JS refused the welcome): the peer's close reply must still be parsed,
      // whatever texts come before it, or the closing handshake waits for the welcome timer.
      {
        std::lock_guard<std::mutex> g(tx_mu_);
        if (!started_.load() && !close_sent_) gated_.store(true);
      }
      PushEvent(E_TEXT, 0, m.data, m.len);
      return true;
    case ws::kPing:
    case ws::kPong: PushEvent(m.opcode == ws::kPing ? E_PING : E_PONG, 0, m.data, m.len); return true;
    default: {  // kClose: echo it (5.5.1), then the end with the peer's code
      const uint16_t code = m.len >= 2 ? static_cast<uint16_t>((m.data[0] << 8) | m.data[1]) : 1005;
      const uint8_t* reason = m.len > 2 ? m.data + 2 : nullptr;
      const size_t rlen = m.len > 2 ? m.len - 2 : 0;
      uint8_t echo[ws::kMaxControl];
      if (m.len > 0) memcpy(echo, m.data, m.len);
      SendLocked(ws::kClose, echo, m.len, false);
      End(code, reason, rlen);
      return false;
    }
  }
}

// Parse what the reader holds while the gate is open and JS's queue has room. False once the link ended.
bool Link::ParseSome() {
  while (!gated_.load()) {
    {
      std::lock_guard<std::mutex> g(ev_mu_);
      if (events_.size() > ev_cap_ / 2) return true;
    }
    ws::Message m;
    const ws::Reader::Result r = rx_.Next(&m);
    if (r == ws::Reader::kNeedMore) return true;
    if (r == ws::Reader::kError) {
      CloseWith(rx_.close_code(), rx_.reason());
      End(rx_.close_code(), reinterpret_cast<const uint8_t*>(rx_.reason()), strlen(rx_.reason()));
      return false;
    }
    if (!HandleMessage(m)) return false;
  }
  return true;
}

// One read(2) from the socket, then parse. False once the link ended.
bool Link::ReadSocket() {
  size_t room;
  uint8_t* at = rx_.ReadPtr(&room);
  if (at == nullptr || room == 0) return true;  // full until parsed: the gate or JS's queue holds it
  ssize_t r;
  do r = ::read(o_.sock_fd, at, room);
  while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
  if (r <= 0) return End(1006, nullptr, 0), false;  // EOF or an error without a close frame
  rx_.Commit(static_cast<size_t>(r));
  Arrived();
  return ParseSome();
}

void Link::Loop() {
  // Named so an operator sees it apart from the event loop (top -H, ps -L, /proc/PID/task/*/comm).
  pthread_setname_np(pthread_self(), kThreadName);
  pollfd fds[3];
  while (!ended_.load()) {
    if (stop_.load()) return End(1006, nullptr, 0);
    bool closing, queued;
    {
      std::lock_guard<std::mutex> g(tx_mu_);
      closing = close_sent_;
      queued = tx_.queued() > 0;
    }
    // Bytes already read (a prefill, or held while the gate was shut) are parsed before waiting for more.
    if (rx_.buffered() > 0 && !ParseSome()) return;
    bool room;
    {
      std::lock_guard<std::mutex> g(ev_mu_);
      room = events_.size() <= ev_cap_ / 2;
    }
    const bool reading = !gated_.load() && room;
    const short sev = static_cast<short>((reading ? POLLIN : 0) | (queued ? POLLOUT : 0));
    // Coalescing: a flood's TAP is left to fill until tap_resume_ns_ (the socket is served meanwhile).
    int64_t wait_ns = -1;
    if (tap_resume_ns_ != 0) {
      wait_ns = tap_resume_ns_ - MonotonicNs();
      if (wait_ns <= 0) tap_resume_ns_ = 0, wait_ns = -1;
    }
    const bool tap = started_.load() && !closing && !tap_gone_ && wait_ns < 0;
    if (tap && !follow_init_) {
      // On this thread: the mask it started with is its own.
      follow_.Init(follow_busy_.load(), o_.sock_fd);
      follow_init_ = true;
    }
    int n = 0;
    fds[n++] = {efd_, POLLIN, 0};
    const int si = sev != 0 ? n : -1;
    if (si >= 0) fds[n++] = {o_.sock_fd, sev, 0};
    const int ti = tap ? n : -1;
    if (ti >= 0) fds[n++] = {o_.tap_fd, POLLIN, 0};
    // Split as ppoll(2) wants it (tv_nsec below 1e9): a caller of Start() may pass more than the binding's 200 µs.
    struct timespec ts = {static_cast<time_t>(wait_ns / 1000000000), static_cast<long>(wait_ns % 1000000000)};
    if (::ppoll(fds, n, wait_ns < 0 ? nullptr : &ts, nullptr) < 0) {
      if (errno == EINTR) continue;
      return End(1006, nullptr, 0);
    }
    if (fds[0].revents != 0) {
      uint64_t v;
      ssize_t r = ::read(efd_, &v, sizeof v);
      (void)r;
    }
    if (si >= 0 && fds[si].revents != 0) {
      const short re = fds[si].revents;
      if ((re & POLLNVAL) != 0) return End(1006, nullptr, 0);
      if ((re & POLLOUT) != 0 || (!reading && (re & (POLLERR | POLLHUP)) != 0)) {
        ws::Output::Result r;
        {
          std::lock_guard<std::mutex> g(tx_mu_);
          r = tx_.Flush(o_.sock_fd);
        }
        if (r == ws::Output::kBroken) return End(1006, nullptr, 0);
      }
      if (reading && (re & (POLLIN | POLLERR | POLLHUP)) != 0 && !ReadSocket()) return;
    }
    if (ti >= 0 && fds[ti].revents != 0) {
      if ((fds[ti].revents & POLLIN) != 0) {
        if (!Burst()) return;
      } else {
        // The TAP went away (POLLERR/POLLHUP/POLLNVAL without data): stop reading it, never spin on it.
        tap_gone_ = true;
        Count(tap_, RX_ERRORS, 1);
      }
    }
  }
}

}  // namespace wslink
}  // namespace tapswitch
