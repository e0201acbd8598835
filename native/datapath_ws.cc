// The fast path's WebSocket ports (issue 24; the design is fastpath.cc's
// header): one burst of a connection (a read, its messages parsed in place,
// each binary message's records decided as a TAP's frames are), the flush of
// its queue when the socket takes more, and its end. The tables and the TAP
// side are datapath.cc's.

#include <errno.h>

#include <algorithm>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "datapath.h"

namespace tapswitch {
namespace fastpath {

// One burst from WebSocket `slot`: one read(2) (at most the reader's room,
// 64 KiB: fair to the other ports), then every whole message it completed.
// Binary messages are batches whose records are decided under the lock, in
// place (the reader unmasked them where they were read); text, pings and
// pongs go to JS; a close frame, a failure to parse, EOF or an error end the
// port. True if JS is owed a call (misses, events, an end).
bool Datapath::WsBurst(int slot, int fd) {
  ws::Conn* c;
  size_t hdr;
  {
    std::lock_guard<std::mutex> g(mu_);
    PortSlot& p = ports_[slot];
    if (p.fd != fd || p.dead || !p.ws || p.held) return false;  // removed (and maybe reused) since poll(); held
    // Unlike a TAP, a WebSocket peer can wait: while the queue for JS could not take what one more
    // read may complete (every record a miss), the slot is not read, and TCP holds its peer back.
    // And a per-client share of it (a quarter, at least one read's worth, for all the ports of one
    // client together): one client flooding misses waits for JS by itself, whatever number of ports
    // it has, while the others go on being read.
    const size_t need = 2 * (max_message_ + ws::kReadRoom);
    const size_t share = std::max(need, misses_.cap() / 4);
    if (misses_.room() < need || misses_.queued(slot) + need > share) {
      p.stalled = true;
      any_stalled_ = true;
      return false;
    }
    c = p.ws.get();
    hdr = p.vnet ? kVnetHdrLen : 0;
    p.kick = false;
    bursts_begun_++;
  }
  // No lock: the reader is this thread's alone, and removePort waits for us.
  ws::Reader& rx = c->rx();
  size_t room = 0;
  uint8_t* at = rx.ReadPtr(&room);
  // What lies in [lo, hi) stays put until the next ReadPtr: hits may point into it.
  const uint8_t* lo = at != nullptr ? at - rx.buffered() : nullptr;
  const uint8_t* hi = at != nullptr ? at + room : nullptr;
  ssize_t r = -EPROTO;
  if (at != nullptr && room > 0) {
    do r = ::read(fd, at, room);
    while (r < 0 && errno == EINTR);
    if (r > 0) rx.Commit(static_cast<size_t>(r));
    if (r < 0) r = -errno;
  }
  WsEnd end;
  bool owed = false;
  {
    std::lock_guard<std::mutex> g(mu_);
    PortSlot& in = ports_[slot];
    if (in.fd == fd) owed = ParseWs(slot, in, hdr, lo, hi, &end);
    if (end.code == 0 && (r == 0 || (r < 0 && r != -EAGAIN && r != -EWOULDBLOCK))) end.code = 1006;
    if (in.fd != fd) end.code = 0;  // removed meanwhile: JS is done with it
  }
  WriteHits();
  if (end.code != 0 && end.local) {
    // The close frame a failure owes (7.1.7), one non-blocking try.
    uint8_t payload[ws::kMaxControl];
    char why[ws::kMaxControl - 1] = {};
    memcpy(why, end.reason, std::min(end.reason_len, sizeof why - 1));
    const size_t n = ws::ClosePayload(payload, end.code, why);
    struct iovec part = {payload, n};
    c->Send(ws::kClose, nullptr, &part, 1, n);
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    Publish(hdr);
    if (end.code != 0 && ports_[slot].fd == fd && !ports_[slot].dead) {
      EndWs(slot, end.code, end.local, end.reason, end.reason_len);
      owed = true;
    }
    bursts_done_++;
  }
  idle_.notify_all();  // a removePort may wait for this burst
  return owed;
}

// Under mu_: every whole message the reader holds. Binary messages are
// decided record by record (in place when [lo, hi) holds them), text, pings
// and pongs queued for JS; a close frame or a failure fills `end` and stops.
// True if JS is owed a call.
bool Datapath::ParseWs(int slot, PortSlot& in, size_t hdr, const uint8_t* lo, const uint8_t* hi, WsEnd* end) {
  ws::Reader& rx = in.ws->rx();
  bool owed = false;
  ws::Message m;
  while (end->code == 0) {
    const ws::Reader::Result res = rx.Next(&m);
    if (res == ws::Reader::kNeedMore) break;
    if (res == ws::Reader::kError) {
      *end = WsEnd{rx.close_code(), true, reinterpret_cast<const uint8_t*>(rx.reason()), strlen(rx.reason())};
      break;
    }
    switch (m.opcode) {
      case ws::kBinary: {
        if (in.closing) break;  // the port is being closed: what its peer still sends is not read
        // After a text message of this burst, JS decides: the text may close the port before these are read.
        const int st = DecideWsMessage(slot, in, m, hdr, !in.held && m.data >= lo && m.data + m.len <= hi);
        owed |= st != 0;
        // A malformed batch JS could not be told of (its queue full): closed here, as JS would.
        static const char kMalformed[] = "malformed batch";
        if ((st & 2) != 0)
          *end =
              WsEnd{ws::kCloseProtocolError, true, reinterpret_cast<const uint8_t*>(kMalformed), sizeof kMalformed - 1};
        break;
      }
      case ws::kText:
        if (in.closing) break;
        Event(slot, E_TEXT, m.data, m.len);
        // Held until JS has handled it (even if the queue refused it: the drain releases the slot).
        in.held = true;
        any_held_ = true;
        owed = true;
        break;
      case ws::kPing: owed |= Event(slot, E_PING, m.data, m.len); break;
      case ws::kPong: owed |= Event(slot, E_PONG, m.data, m.len); break;
      case ws::kClose:
        // The peer's close: JS answers it (NativeSocket), then ends the port. The reason stays put until the next read.
        *end = WsEnd{m.len >= 2 ? static_cast<uint16_t>((m.data[0] << 8) | m.data[1]) : uint16_t(1005), false,
                     m.len > 2 ? m.data + 2 : nullptr, m.len > 2 ? m.len - 2 : 0};
        break;
      default: break;
    }
  }
  return owed;
}

// Under mu_: a binary message's records, each decided as a TAP's frame. A
// message that is not where it was read (its fragments were gathered) goes
// to JS whole, record by record. Records that do not tile the message: the
// rest goes to JS as it is (the switch finds it malformed and JS closes the
// port with 1002, as for a batch ws read), and the port's data is no longer
// forwarded. Returns bit 0: JS is owed a call; bit 1: a malformed rest JS
// could not be given.
int Datapath::DecideWsMessage(int slot, PortSlot& in, const ws::Message& m, size_t hdr, bool in_place) {
  int st = 0;
  size_t off = 0;
  while (off < m.len) {
    if (m.len - off < kRecordHeader || ReadBE32(m.data + off) > m.len - off - kRecordHeader) {
      in.closing = true;
      return Event(slot, E_MALFORMED, m.data + off, m.len - off) ? (st | 1) : (st | 2);
    }
    const size_t len = ReadBE32(m.data + off);
    if (in_place) {
      if (DecideRecord(slot, in, m.data + off, len, hdr)) st |= 1;
    } else {
      stats_[F_MISSES]++;
      if (misses_.Push(slot, m.data + off + kRecordHeader, len))
        st |= 1;
      else
        stats_[F_MISS_DROPPED]++;
    }
    off += kRecordHeader + len;
  }
  return st;
}

// Under mu_: a message for JS (text, ping, pong, a malformed rest); false if
// the queue is full (counted with the misses dropped: a peer that floods
// pings or text while JS is busy loses some, as with misses).
bool Datapath::Event(int slot, uint8_t kind, const uint8_t* p, size_t n) {
  if (misses_.Push(slot, p, n, kind)) return true;
  stats_[F_MISS_DROPPED]++;
  return false;
}

// Under mu_, on the thread: the port's end, for JS (one entry per slot: the
// slot is not polled from now on, and removePort drops an entry not yet taken).
void Datapath::EndWs(int slot, uint16_t code, bool local, const uint8_t* reason, size_t reason_len) {
  PortSlot& p = ports_[slot];
  p.dead = true;
  p.closing = true;
  ports_gen_++;
  WsClosed c;
  c.slot = slot;
  c.code = code;
  c.local = local;
  c.reason_len = static_cast<uint8_t>(std::min(reason_len, sizeof c.reason));
  if (c.reason_len > 0) memcpy(c.reason, reason, c.reason_len);
  closed_.push_back(c);  // reserved at kMaxPorts: no allocation
}

// The socket takes more: write what the slot's queue holds. A broken socket ends the port.
void Datapath::WsFlush(int slot, int fd) {
  ws::Conn* c;
  {
    std::lock_guard<std::mutex> g(mu_);
    PortSlot& p = ports_[slot];
    if (p.fd != fd || p.dead || !p.ws) return;
    c = p.ws.get();
    bursts_begun_++;
  }
  const ws::Output::Result r = c->Flush();
  {
    std::lock_guard<std::mutex> g(mu_);
    if (r == ws::Output::kBroken && ports_[slot].fd == fd && !ports_[slot].dead) {
      EndWs(slot, 1006, false, nullptr, 0);
      owed_ = true;
    }
    bursts_done_++;
  }
  idle_.notify_all();
}

}  // namespace fastpath
}  // namespace tapswitch
