// The fast path's datapath: the thread and the rules of a hit. The design
// (why a thread, the lock, removed ports, flushed flows) is fastpath.cc's
// header; the tables are datapath.h's.

#include "datapath.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace tapswitch {
namespace fastpath {

namespace {

constexpr uint8_t kVnetNeedsCsum = 1, kVnetDataValid = 2;
constexpr uint8_t kGsoTcp4 = 1, kGsoTcp6 = 4, kGsoEcn = 0x80;
// The slow path's bounds (src/common/gso.ts): TCP_MIN_MSS, the most segments
// one GSO frame may be cut into, the largest GSO frame, TCP's checksum field.
constexpr size_t kMinGsoSize = 88, kMaxGsoSegments = 256, kMaxGsoFrame = 65535 + 14 + 4, kTcpCsumOffset = 16;
constexpr size_t kEthHlen = 14;

// Where an untagged GSO frame's TCP header ends (its payload begins), or 0 if
// its headers do not say TCP over the IP version `gso` names, or disagree with
// csum_start `l4`: gso.ts tcpHeadersEnd.
size_t TcpHeadersEnd(const uint8_t* f, size_t len, uint8_t gso, size_t l4) {
  const size_t l3 = kEthHlen;
  const uint16_t type = Be16(f + 12);
  if (gso == kGsoTcp4) {
    if (type != 0x0800 || l3 + 20 > len) return 0;
    const uint8_t vihl = f[l3];
    if ((vihl >> 4) != 4 || (vihl & 15) < 5 || l3 + (vihl & 15) * 4u != l4) return 0;
    if (f[l3 + 9] != 6 || (Be16(f + l3 + 6) & 0x3fff) != 0) return 0;  // TCP, never a fragment
  } else {
    if (type != 0x86dd || l3 + 40 > l4 || (f[l3] >> 4) != 6) return 0;
    if (l4 == l3 + 40 && f[l3 + 6] != 6) return 0;
  }
  if (l4 + 20 > len) return 0;
  const size_t end = l4 + (f[l4 + 12] >> 4) * 4u;
  return end < l4 + 20 || end > len ? 0 : end;
}

// Whether an untagged frame `f` of `flen` bytes behind the virtio-net header
// `h` is one the slow path would forward as it is (gso.ts checkOffload says
// OFFLOAD_OK for `max_frame`). A WebSocket ingress's header is its peer's,
// not a kernel's: nothing in it is trusted; anything else is a miss, and the
// slow path drops and counts it.
bool VnetOk(const uint8_t* h, const uint8_t* f, size_t flen, size_t max_frame) {
  const uint8_t flags = h[0], gso = h[1];
  if ((flags & ~(kVnetNeedsCsum | kVnetDataValid)) != 0) return false;
  if (Le16(h + 2) > flen) return false;  // hdr_len beyond the frame: the receiving kernel refuses it
  const size_t csum_start = Le16(h + 6), csum_offset = Le16(h + 8);
  if ((flags & kVnetNeedsCsum) != 0 && (csum_start < kEthHlen || csum_start + csum_offset + 2 > flen)) return false;
  if (gso == 0) return flen <= max_frame;
  const uint8_t t = gso & ~kGsoEcn;
  if (t != kGsoTcp4 && t != kGsoTcp6) return false;
  const size_t mss = Le16(h + 4);
  if ((flags & kVnetNeedsCsum) == 0 || csum_offset != kTcpCsumOffset || mss < kMinGsoSize) return false;
  if (flen > kMaxGsoFrame) return false;
  const size_t headers = TcpHeadersEnd(f, flen, t, csum_start);
  return headers != 0 && headers + mss <= max_frame && flen - headers <= mss * kMaxGsoSegments;
}

// Parts of one message ws::Output takes (a header and 63 more).
constexpr int kMaxParts = 63;
// What a WebSocket port's queue may hold past its high-water mark: what was
// sent while it was just under the mark. The event loop checks the mark
// before each frame it queues and sends at most one message past it; the
// thread checks before each burst and sends a burst's records (up to 256 KiB
// + 64 KiB read) in at most two; the two may race once. Plus room for control
// frames. Past it a message is refused (a counted drop). The queue is
// reserved at this cap the first time the socket pushes back, so no more.
constexpr size_t kTxSlackMessages = 3;
constexpr size_t kTxSlackControl = 4096;

}  // namespace

Flow* FlowTable::Match(int slot, const uint8_t* rec, size_t len, size_t hdr) {
  if (index_.empty() || len < hdr + 14) return nullptr;
  const uint8_t* f = rec + hdr;
  const size_t flen = len - hdr;
  if ((f[0] & 1) != 0) return nullptr;  // group dst: flooded by the slow path
  const uint16_t type = uint16_t((f[12] << 8) | f[13]);
  if (type == 0x8100 || type == 0x88a8 || type == 0x9100) return nullptr;  // a tag: the slow path classifies it
  auto it = index_.find(Key{Mac(f), (Mac(f + 6) << 16) | static_cast<uint64_t>(slot)});
  if (it == index_.end()) return nullptr;
  Flow& fl = flows_[it->second];
  if (hdr != 0) {
    // The slow path's checkOffload in full: a WebSocket peer writes the header, not a kernel.
    if (!VnetOk(rec, f, flen, fl.max_frame)) return nullptr;
  } else if (flen > fl.max_frame) {
    return nullptr;
  }
  return &fl;
}

Datapath::Datapath(size_t max_flows, size_t miss_bytes, size_t max_message)
    : max_message_(max_message), flows_(max_flows), misses_(miss_bytes, kMaxPorts) {
  ports_.resize(kMaxPorts);
  burst_.resize(kBurstBytes + kRecordHeader + kMaxRecord);
  hits_.resize(kMaxHits);
  egress_.resize(kMaxPorts);
  touched_.reserve(kMaxPorts);
  closed_.reserve(kMaxPorts);
  closed_draining_.reserve(kMaxPorts);
}

int Datapath::Start(void (*notify)(void*), void* arg) {
  efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd_ < 0) return errno;
  notify_ = notify;
  notify_arg_ = arg;
  thread_ = std::thread([this] { Run(); });
  return 0;
}

void Datapath::Stop() {
  if (thread_.joinable()) {
    stop_.store(true);
    Wake();
    thread_.join();
  }
  if (efd_ >= 0) {
    ::close(efd_);
    efd_ = -1;
  }
}

int Datapath::AddPort(int fd, bool vnet) {
  int slot = -1;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (size_t i = 0; i < kMaxPorts && slot < 0; i++)
      if (ports_[i].fd < 0) slot = static_cast<int>(i);
    if (slot < 0) return -1;
    ports_[slot] = PortSlot{};
    ports_[slot].fd = fd;
    ports_[slot].vnet = vnet;
    ports_gen_++;
  }
  Wake();
  return slot;
}

int Datapath::AddWsPort(int fd, bool vnet, const uint8_t* prefill, size_t prefill_len, size_t hwm, size_t client) {
  // Made here, on the main thread: the one allocation of a port (its buffers grow on first use).
  auto conn = std::make_unique<ws::Conn>(fd, ws::Role::kServer, max_message_,
                                         hwm + kTxSlackMessages * max_message_ + kTxSlackControl);
  if (prefill_len > 0 && !conn->rx().Feed(prefill, prefill_len)) return -2;  // conn closes fd
  int slot = -1;
  {
    std::lock_guard<std::mutex> g(mu_);
    for (size_t i = 0; i < kMaxPorts && slot < 0; i++)
      if (ports_[i].fd < 0) slot = static_cast<int>(i);
    if (slot >= 0) {
      ports_[slot] = PortSlot{};
      ports_[slot].fd = fd;
      ports_[slot].vnet = vnet;
      ports_[slot].ws = std::move(conn);
      ports_[slot].hwm = hwm;
      ports_[slot].kick = prefill_len > 0;
      misses_.SetAccount(slot, client);
      ports_gen_++;
    }
  }
  if (slot < 0) return -1;  // conn closes fd, without the lock
  Wake();
  return slot;
}

void Datapath::RemovePort(int slot) {
  if (slot < 0 || static_cast<size_t>(slot) >= kMaxPorts) return;
  std::unique_ptr<ws::Conn> conn;
  {
    std::unique_lock<std::mutex> g(mu_);
    ports_[slot].fd = -1;
    conn = std::move(ports_[slot].ws);
    ports_gen_++;
    flows_.Clear();
    misses_.DropSlot(slot);
    closed_.erase(std::remove_if(closed_.begin(), closed_.end(), [slot](const WsClosed& c) { return c.slot == slot; }),
                  closed_.end());
    // A burst begun before this may still read the fd, or write to it what it decided before:
    // wait for that one (no later burst can pick the slot). The wait releases the lock.
    const uint64_t upto = bursts_begun_;
    idle_.wait(g, [&] { return bursts_done_ >= upto; });
  }
  Wake();
  if (conn) {
    // The thread is done with it: one non-blocking try at what is queued (a close frame owed), then the end.
    conn->Flush();
    ::shutdown(conn->fd(), SHUT_RDWR);
  }  // its destructor closes our dup of the fd and frees its buffers
}

int Datapath::SendWs(int slot, uint8_t opcode, const uint8_t* p, size_t n) {
  if (slot < 0 || static_cast<size_t>(slot) >= kMaxPorts) return ws::Output::kBroken;
  ws::Conn* c = ports_[slot].ws.get();  // made and destroyed on this thread only
  if (c == nullptr) return ws::Output::kBroken;
  if (opcode == ws::kClose) {
    std::lock_guard<std::mutex> g(mu_);
    ports_[slot].closing = true;
  }
  const bool was_empty = c->Queued() == 0;
  struct iovec part = {const_cast<uint8_t*>(p), n};
  const ws::Output::Result r = c->Send(opcode, nullptr, &part, n > 0 ? 1 : 0, n);
  if (r == ws::Output::kQueued && was_empty) Wake();  // the thread now polls for POLLOUT
  return r;
}

size_t Datapath::WsBuffered(int slot) {
  if (slot < 0 || static_cast<size_t>(slot) >= kMaxPorts) return 0;
  ws::Conn* c = ports_[slot].ws.get();
  return c != nullptr ? c->Queued() : 0;
}

size_t Datapath::WsFootprint() {
  size_t n = 0;
  for (auto& p : ports_)
    if (p.ws) n += p.ws->Footprint();
  return n;
}

int Datapath::Install(int in, uint64_t dst, uint64_t src, int out, size_t max_frame) {
  if (in < 0 || out < 0 || static_cast<size_t>(in) >= kMaxPorts || static_cast<size_t>(out) >= kMaxPorts || in == out)
    return -1;
  std::lock_guard<std::mutex> g(mu_);
  if (ports_[in].fd < 0 || ports_[out].fd < 0 || ports_[in].vnet != ports_[out].vnet) return -1;
  return flows_.Install(Key{dst, (src << 16) | static_cast<uint64_t>(in)}, out, max_frame);
}

void Datapath::Remove(int flow) {
  std::lock_guard<std::mutex> g(mu_);
  flows_.Remove(flow);
}

void Datapath::Flush() {
  std::unique_lock<std::mutex> g(mu_);
  flows_.Clear();
  // A burst begun before this may still write what it decided under the old flows:
  // wait for it, so that a disable or a capture takes effect once flush() returns.
  const uint64_t upto = bursts_begun_;
  idle_.wait(g, [&] { return bursts_done_ >= upto; });
}

void Datapath::FlowHits(double* out, size_t n) {
  std::lock_guard<std::mutex> g(mu_);
  n = std::min(n, flows_.capacity());
  for (size_t i = 0; i < n; i++) out[i] = flows_.hits(i);
}

void Datapath::PortStats(int slot, double* out) {
  if (slot < 0 || static_cast<size_t>(slot) >= kMaxPorts) return;
  std::lock_guard<std::mutex> g(mu_);
  std::copy(ports_[slot].stats, ports_[slot].stats + P_COUNT, out);
}

void Datapath::Stats(double* out) {
  std::lock_guard<std::mutex> g(mu_);
  std::copy(stats_, stats_ + F_COUNT, out);
  out[F_FLOWS] = static_cast<double>(flows_.size());
}

std::vector<uint8_t>& Datapath::TakeMisses(std::vector<WsClosed>** closed) {
  bool unstall = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    misses_.Take();
    closed_draining_.swap(closed_);  // both reserved at kMaxPorts: one entry per slot at most
    *closed = &closed_draining_;
    if (any_stalled_) {
      for (auto& p : ports_) p.stalled = false;
      any_stalled_ = false;
      unstall = true;
    }
  }
  if (unstall) Wake();  // the stalled slots are polled again
  return misses_.draining();
}

void Datapath::Drained() {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (!any_held_) return;
    for (auto& p : ports_) p.held = false;
    any_held_ = false;
  }
  Wake();  // the held slots are polled again
}

void Datapath::Wake() {
  uint64_t one = 1;
  if (efd_ >= 0) {
    ssize_t r = ::write(efd_, &one, sizeof one);
    (void)r;
  }
}

// Under mu_: the poll set, rebuilt when ports came or went (a dead WebSocket port is no longer polled).
void Datapath::BuildPollSet(std::vector<struct pollfd>* fds, std::vector<int>* slots) {
  fds->clear();
  slots->clear();
  fds->push_back(pollfd{efd_, POLLIN, 0});
  slots->push_back(-1);
  for (size_t i = 0; i < kMaxPorts; i++)
    if (ports_[i].fd >= 0 && !ports_[i].dead) {
      fds->push_back(pollfd{ports_[i].fd, POLLIN, 0});
      slots->push_back(static_cast<int>(i));
    }
}

// The thread: poll the eventfd and every port's fd (a WebSocket port's for
// POLLOUT too while its queue holds bytes); read bursts; hits out, misses to JS.
void Datapath::Run() {
  // Named so an operator sees it apart from the event loop (top -H, ps -L, /proc/PID/task/*/comm).
  pthread_setname_np(pthread_self(), kThreadName);
  std::vector<pollfd> fds;
  std::vector<int> slots;
  std::vector<ws::Conn*> conns;
  std::vector<char> kicks, stalls;
  std::vector<int> real;  // each entry's fd (a stalled one is left out of fds by a negative number)
  fds.reserve(kMaxPorts + 1);
  slots.reserve(kMaxPorts + 1);
  conns.reserve(kMaxPorts + 1);
  kicks.reserve(kMaxPorts + 1);
  uint64_t seen_gen = ~0ull;
  while (!stop_.load()) {
    bool any_ws = false, kicked = false;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (seen_gen != ports_gen_) {
        seen_gen = ports_gen_;
        BuildPollSet(&fds, &slots);
        real.resize(fds.size());
        for (size_t i = 0; i < fds.size(); i++) real[i] = fds[i].fd;
      }
      conns.assign(fds.size(), nullptr);
      kicks.assign(fds.size(), 0);
      stalls.assign(fds.size(), 0);
      for (size_t i = 1; i < fds.size(); i++) {
        const PortSlot& p = ports_[slots[i]];
        if (p.fd != real[i] || !p.ws) continue;
        conns[i] = p.ws.get();
        kicks[i] = p.kick;
        stalls[i] = p.stalled || p.held;
        kicked |= p.kick && !stalls[i];
        any_ws = true;
      }
      // Reading the queues below is a burst of its own: removePort waits for it before freeing a connection.
      if (any_ws) bursts_begun_++;
    }
    if (any_ws) {
      // A stalled slot is left out of the set (a negative fd), or its unread bytes would wake us at once, again and
      // again.
      for (size_t i = 1; i < fds.size(); i++) {
        if (conns[i] == nullptr) continue;
        fds[i].fd = stalls[i] ? -1 : real[i];
        fds[i].events = POLLIN | (conns[i]->Queued() > 0 ? POLLOUT : 0);
      }
      {
        std::lock_guard<std::mutex> g(mu_);
        bursts_done_++;
      }
      idle_.notify_all();
    }
    // A removed port's fd may still be in this set: poll() only waits on it, and the eventfd
    // (removePort wakes it) makes us rebuild the set before any burst could read it.
    int r = ::poll(fds.data(), fds.size(), kicked ? 0 : -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) {
      uint64_t v;
      ssize_t n = ::read(efd_, &v, sizeof v);
      (void)n;
      continue;
    }
    bool notify = false;
    for (size_t i = 1; i < fds.size(); i++) {
      const short ev = fds[i].revents;
      if (conns[i] != nullptr) {
        if ((ev & POLLOUT) != 0) WsFlush(slots[i], real[i]);
        if ((ev & ~POLLOUT) != 0 || (kicks[i] && !stalls[i])) notify |= WsBurst(slots[i], real[i]);
        continue;
      }
      if (ev == 0) continue;
      if ((ev & (POLLERR | POLLNVAL | POLLHUP)) != 0 && (ev & POLLIN) == 0) {
        // The device went away: stop polling it (JS learns of it on its own side).
        std::lock_guard<std::mutex> g(mu_);
        if (ports_[slots[i]].fd == fds[i].fd) {
          ports_[slots[i]].fd = -1;
          ports_gen_++;
          flows_.Clear();
        }
        continue;
      }
      notify |= Burst(slots[i], fds[i].fd);
    }
    if (notify || owed_) notify_(notify_arg_);
    owed_ = false;
  }
}

// One burst from TAP `slot`: true if a miss was queued for JS. The lock is
// taken to begin, to decide and to publish; never across read or write.
bool Datapath::Burst(int slot, int fd) {
  size_t hdr;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (ports_[slot].fd != fd) return false;  // removed (and maybe reused) since poll()
    hdr = ports_[slot].vnet ? kVnetHdrLen : 0;
    bursts_begun_++;
  }
  const uint32_t n = ReadBurst(fd);
  bool missed = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    missed = Decide(slot, fd, hdr, n);
  }
  WriteHits();
  {
    std::lock_guard<std::mutex> g(mu_);
    Publish(hdr);
    bursts_done_++;
  }
  idle_.notify_all();  // a removePort may wait for this burst
  return missed;
}

// Read up to kBurst frames (or kBurstBytes) into burst_, each behind room for
// its record length, so a run of hits to a WebSocket port leaves as one
// batch without a copy. No lock: removePort waits for us.
uint32_t Datapath::ReadBurst(int fd) {
  uint8_t* buf = burst_.data();
  size_t used = 0;
  uint32_t n = 0;
  while (n < kBurst && used + kRecordHeader + kMaxRecord <= burst_.size()) {
    ssize_t r;
    do r = ::read(fd, buf + used + kRecordHeader, kMaxRecord);
    while (r < 0 && errno == EINTR);
    // A length over what was asked (a broken fd or interposer; issue 12, finding 16) is never trusted.
    if (r <= 0 || static_cast<size_t>(r) > kMaxRecord) break;
    WriteBE32(buf + used, static_cast<uint32_t>(r));
    frames_[n].off = used;
    frames_[n].len = static_cast<size_t>(r);
    used += kRecordHeader + static_cast<size_t>(r);
    n++;
  }
  return n;
}

// Under mu_: each frame a hit or a miss queued for JS. Frames of a port
// removed since the burst began are dropped.
bool Datapath::Decide(int slot, int fd, size_t hdr, uint32_t n) {
  PortSlot& in = ports_[slot];
  if (in.fd != fd) return false;
  bool missed = false;
  for (uint32_t i = 0; i < n; i++)
    missed |= DecideRecord(slot, in, burst_.data() + frames_[i].off, frames_[i].len, hdr);
  return missed;
}

// Under mu_: one record (`rec`: its u32 length, then `len` bytes) a hit,
// chained to its egress (whose fd and connection are taken now), or a miss
// queued for JS (true). An egress that is going (closing, dead) is a miss:
// JS drops and counts what it would have been sent.
bool Datapath::DecideRecord(int slot, PortSlot& in, const uint8_t* rec, size_t len, size_t hdr) {
  const uint8_t* frame = rec + kRecordHeader;
  Flow* fl = nhits_ < kMaxHits ? flows_.Match(slot, frame, len, hdr) : nullptr;
  if (fl != nullptr) {
    PortSlot& eg = ports_[fl->out];
    if (eg.fd >= 0 && !eg.dead && !eg.closing) {
      fl->hits++;
      stats_[F_HITS]++;
      in.stats[P_RX_FRAMES]++;
      in.stats[P_RX_BYTES] += static_cast<double>(len - hdr);
      const int h = nhits_++;
      hits_[h] = Hit{rec, len, fl->out, -1, false};
      Egress& e = egress_[fl->out];
      if (e.head < 0) {
        e = Egress{eg.fd, eg.ws.get(), eg.hwm, h, h, false};
        touched_.push_back(fl->out);
      } else {
        hits_[e.tail].next = h;
        e.tail = h;
      }
      return false;
    }
  }
  stats_[F_MISSES]++;
  if (misses_.Push(slot, frame, len)) return true;
  stats_[F_MISS_DROPPED]++;
  return false;
}

// Write the hits, as read: a TAP gets one write(2) per frame, a WebSocket
// port one binary message per run of its hits. No lock: the fds stay open
// until this burst is done.
void Datapath::WriteHits() {
  for (int out : touched_) {
    Egress& e = egress_[out];
    if (e.conn != nullptr) {
      SendBatch(e, e.head);
      continue;
    }
    for (int h = e.head; h >= 0; h = hits_[h].next) {
      ssize_t w;
      do w = ::write(e.fd, hits_[h].rec + kRecordHeader, hits_[h].len);
      while (w < 0 && errno == EINTR);
      hits_[h].sent = w >= 0;
    }
  }
}

// The egress's chain of hits as batches: records that lie back to back go
// out as one part, a message holds at most kMaxParts parts and max_message_
// bytes. Past the port's high-water mark nothing is sent (counted drops, as
// the slow path's backpressure).
void Datapath::SendBatch(Egress& e, int from) {
  if (e.conn->Queued() > e.hwm) return;
  struct iovec parts[kMaxParts];
  while (from >= 0 && !e.broken) {
    int n = 0, h = from;
    size_t total = 0;
    for (; h >= 0; h = hits_[h].next) {
      const size_t rl = kRecordHeader + hits_[h].len;
      if (total + rl > max_message_) break;
      if (n > 0 && static_cast<const uint8_t*>(parts[n - 1].iov_base) + parts[n - 1].iov_len == hits_[h].rec) {
        parts[n - 1].iov_len += rl;
      } else {
        if (n == kMaxParts) break;
        parts[n++] = {const_cast<uint8_t*>(hits_[h].rec), rl};
      }
      total += rl;
    }
    const ws::Output::Result r = e.conn->Send(ws::kBinary, nullptr, parts, n, total);
    const bool sent = r == ws::Output::kSent || r == ws::Output::kQueued;
    e.broken = r == ws::Output::kBroken;
    for (; from != h; from = hits_[from].next) hits_[from].sent = sent;
  }
}

// Under mu_: the egress counters of what was written (or refused: the queue
// full, the link down); a WebSocket egress whose socket broke ends.
void Datapath::Publish(size_t hdr) {
  for (int out : touched_) {
    Egress& e = egress_[out];
    PortSlot& eg = ports_[out];
    const bool same = eg.fd == e.fd;  // else removed meanwhile: JS folded its counters in before
    for (int h = e.head; same && h >= 0; h = hits_[h].next) {
      if (!hits_[h].sent) {
        eg.stats[P_TX_DROPPED]++;
        continue;
      }
      eg.stats[P_TX_FRAMES]++;
      eg.stats[P_TX_BYTES] += static_cast<double>(hits_[h].len - hdr);
    }
    if (same && e.broken && !eg.dead) {
      EndWs(out, 1006, false, nullptr, 0);
      owed_ = true;
    }
    e.head = e.tail = -1;
  }
  touched_.clear();
  nhits_ = 0;
}

}  // namespace fastpath
}  // namespace tapswitch
