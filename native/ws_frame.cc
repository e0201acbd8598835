// RFC 6455 framing: the reader's rules and the header writer (contract and
// bounds in ws_frame.h). Section numbers are RFC 6455's.

#include "ws_frame.h"

#include <string.h>

#include <algorithm>

namespace tapswitch {
namespace ws {

namespace {

uint64_t Be(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

bool IsControl(uint8_t op) { return (op & 0x8) != 0; }

// Well-formed UTF-8 (Unicode 3.9, table 3-7): no overlong form, no surrogate, nothing past U+10FFFF.
// Only a close frame's reason (at most 123 bytes) is checked here; texts are checked in JS.
bool IsUtf8(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n;) {
    const uint8_t c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf;  // the second byte's range
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return false;
    for (size_t k = 2; k < len; k++)
      if ((p[i + k] & 0xc0) != 0x80) return false;
    i += len;
  }
  return true;
}

// Capacity for `need` bytes, doubling (amortised: a message trickled in one
// byte per read is not copied once per byte) but never past `cap`: a
// vector's own growth doubles past it, up to twice the bound ws_frame.h
// promises per connection.
void Grow(std::vector<uint8_t>* v, size_t need, size_t cap) {
  if (v->capacity() < need) v->reserve(std::min(cap, std::max(need, 2 * v->capacity())));
}

}  // namespace

Reader::Reader(Role role, size_t max_message) : role_(role), max_message_(max_message) {}

uint8_t* Reader::ReadPtr(size_t* room) {
  if (failed()) {
    *room = 0;
    return nullptr;
  }
  // Unparsed bytes to the front: the buffer never needs more than one frame plus a read's room.
  if (start_ > 0) {
    if (end_ > start_) memmove(buf_.data(), buf_.data() + start_, end_ - start_);
    end_ -= start_;
    start_ = 0;
  }
  // A port gone quiet after a big message (its read room back at the minimum, nothing buffered)
  // gives that memory back, once: a busy port keeps its buffers, an idle one holds a few KiB.
  if (end_ == 0 && read_room_ == kMinReadRoom) {
    if (buf_.capacity() > 2 * kReadRoom) std::vector<uint8_t>().swap(buf_);
    if (frag_opcode_ == 0 && frag_.capacity() > kReadRoom) std::vector<uint8_t>().swap(frag_);
  }
  // Room for read_room_ more (at most kReadRoom), grown here up to one frame plus kReadRoom:
  // Next() refuses a frame longer than max_message before waiting for its payload, so a caller
  // that drains Next() before each read never holds more than that. One that does not gets less
  // room, never more memory. A buffer grown for a big message still offers only read_room_ a
  // read: one port's read stays bounded, fair to the others.
  const size_t cap = kMaxHeader + max_message_ + kReadRoom;
  const size_t want = std::min(end_ + read_room_, cap);
  if (buf_.size() < want) {
    Grow(&buf_, want, cap);
    buf_.resize(want);
  }
  read_to_ = want;
  *room = want - end_;
  return buf_.data() + end_;
}

void Reader::Commit(size_t n) {
  end_ = std::min(end_ + n, read_to_);
  // A read that filled all the room offered: the peer has more, so offer twice as much next time;
  // one that brought a quarter of it or less: the peer slowed down, so half as much.
  if (end_ == read_to_) {
    if (read_room_ < kReadRoom) read_room_ = std::min(kReadRoom, 2 * read_room_);
  } else if (n <= read_room_ / 4 && read_room_ > kMinReadRoom) {
    read_room_ /= 2;
  }
}

bool Reader::Feed(const uint8_t* p, size_t n) {
  // Up to kReadRoom fits at once, whatever the room has grown to so far.
  read_room_ = std::max(read_room_, std::min(n, kReadRoom));
  size_t room;
  uint8_t* at = ReadPtr(&room);
  if (at == nullptr || room < n) return false;
  if (n > 0) memcpy(at, p, n);
  Commit(n);
  return true;
}

Reader::Result Reader::Fail(uint16_t code, const char* why) {
  close_code_ = code;
  reason_ = why;
  return kError;
}

Reader::Result Reader::Next(Message* m) {
  if (failed()) return kError;
  for (;;) {
    const size_t avail = end_ - start_;
    if (avail < 2) return kNeedMore;
    uint8_t* p = buf_.data() + start_;
    const bool fin = (p[0] & 0x80) != 0;
    const uint8_t op = p[0] & 0x0f;
    const bool masked = (p[1] & 0x80) != 0;
    const uint8_t len7 = p[1] & 0x7f;
    // No extension was negotiated (5.2): every RSV bit is a failure.
    if ((p[0] & 0x70) != 0) return Fail(kCloseProtocolError, "RSV bits set without an extension");
    if (op != kContinuation && op != kText && op != kBinary && op != kClose && op != kPing && op != kPong)
      return Fail(kCloseProtocolError, "unknown opcode");
    // 5.1: a client masks everything it sends, a server nothing.
    if (role_ == Role::kServer && !masked) return Fail(kCloseProtocolError, "an unmasked frame from a client");
    if (role_ == Role::kClient && masked) return Fail(kCloseProtocolError, "a masked frame from a server");
    if (IsControl(op) && (!fin || len7 > kMaxControl))
      return Fail(kCloseProtocolError, "a control frame fragmented or over 125 bytes");
    const size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    const size_t hdr = 2 + ext + (masked ? 4 : 0);
    if (avail < hdr) return kNeedMore;
    uint64_t len = ext == 0 ? len7 : Be(p + 2, static_cast<int>(ext));
    // 5.2: the most significant bit of a 64-bit length must be 0; and a longer
    // message than we take fails before we wait for its payload.
    if (ext == 8 && (len >> 63) != 0) return Fail(kCloseProtocolError, "a 64-bit length with its top bit set");
    if (op == kContinuation && frag_opcode_ == 0) return Fail(kCloseProtocolError, "a continuation with no message");
    if ((op == kText || op == kBinary) && frag_opcode_ != 0)
      return Fail(kCloseProtocolError, "a new message inside a fragmented one");
    if (!IsControl(op)) {
      const size_t so_far = op == kContinuation ? frag_.size() : 0;
      if (len > max_message_ - so_far) return Fail(kCloseTooBig, "message over the largest allowed");
    }
    if (avail - hdr < len) return kNeedMore;
    uint8_t* payload = p + hdr;
    const size_t n = static_cast<size_t>(len);
    if (masked) {
      const uint8_t* mask = p + hdr - 4;
      if ((mask[0] | mask[1] | mask[2] | mask[3]) != 0) ApplyMask(payload, n, mask);
    }
    start_ += hdr + n;
    if (op == kClose) {
      if (n == 1) return Fail(kCloseProtocolError, "a close frame with a 1-byte payload");
      if (n >= 2 && !ValidCloseCode(static_cast<uint16_t>(Be(payload, 2))))
        return Fail(kCloseProtocolError, "an invalid close code");
      // 7.1.6 (and ws): a close reason is UTF-8.
      if (n > 2 && !IsUtf8(payload + 2, n - 2)) return Fail(kCloseInvalidData, "a close reason that is not UTF-8");
    }
    if (IsControl(op) || (fin && op != kContinuation)) {
      m->opcode = op;
      m->data = payload;
      m->len = n;
      return kMessage;
    }
    // A fragment: gathered until its final one.
    if (op != kContinuation) {
      frag_opcode_ = op;
      frag_.clear();
    }
    Grow(&frag_, frag_.size() + n, max_message_);
    frag_.insert(frag_.end(), payload, payload + n);
    if (!fin) continue;
    m->opcode = frag_opcode_;
    m->data = frag_.data();
    m->len = frag_.size();
    frag_opcode_ = 0;
    // frag_ keeps its bytes until the next message starts: `data` stays valid until the next call.
    return kMessage;
  }
}

size_t WriteHeader(uint8_t* out, uint8_t opcode, bool fin, uint64_t len, const uint8_t* mask) {
  out[0] = static_cast<uint8_t>((fin ? 0x80 : 0) | (opcode & 0x0f));
  const uint8_t m = mask != nullptr ? 0x80 : 0;
  size_t n;
  if (len < 126) {
    out[1] = static_cast<uint8_t>(m | len);
    n = 2;
  } else if (len <= 0xffff) {
    out[1] = static_cast<uint8_t>(m | 126);
    out[2] = static_cast<uint8_t>(len >> 8);
    out[3] = static_cast<uint8_t>(len);
    n = 4;
  } else {
    out[1] = static_cast<uint8_t>(m | 127);
    for (int i = 0; i < 8; i++) out[2 + i] = static_cast<uint8_t>(len >> (56 - 8 * i));
    n = 10;
  }
  if (mask != nullptr) {
    memcpy(out + n, mask, 4);
    n += 4;
  }
  return n;
}

void ApplyMask(uint8_t* p, size_t n, const uint8_t mask[4], size_t offset) {
  uint8_t m[8];
  for (int i = 0; i < 8; i++) m[i] = mask[(offset + i) & 3];
  uint64_t m64;
  memcpy(&m64, m, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    v ^= m64;
    memcpy(p + i, &v, 8);
  }
  for (; i < n; i++) p[i] ^= m[i & 7];
}

size_t ClosePayload(uint8_t* out, uint16_t code, const char* reason) {
  out[0] = static_cast<uint8_t>(code >> 8);
  out[1] = static_cast<uint8_t>(code);
  size_t n = reason != nullptr ? strlen(reason) : 0;
  n = std::min(n, kMaxControl - 2);
  // Never cut a UTF-8 sequence in two: back up to the start of a character.
  if (n < (reason != nullptr ? strlen(reason) : 0))
    while (n > 0 && (static_cast<uint8_t>(reason[n]) & 0xc0) == 0x80) n--;
  if (n > 0) memcpy(out + 2, reason, n);
  return 2 + n;
}

bool ValidCloseCode(uint16_t code) {
  // 1012-1014 are registered since RFC 6455 (IANA: service restart, try again later, bad gateway; proxies
  // send them) and ws takes them: refusing them would fail a connection ws keeps, and hide the peer's code.
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

}  // namespace ws
}  // namespace tapswitch
