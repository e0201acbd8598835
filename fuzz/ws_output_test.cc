// The C++ test of the WebSocket writer and sender (native/ws_frame.cc's
// WriteHeader, ApplyMask, ClosePayload; native/ws_output.cc): bytes against
// ws's Sender, whole messages only, partial writes queued and flushed in
// order, a message over the cap refused with nothing written. Run with
// ws_frame_test.cc (its main), over a non-blocking socketpair.
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws_test.h"

namespace wstest {

namespace {

// A non-blocking socketpair with a small send buffer: the far end reads what was sent.
struct Pair {
  int fd[2] = {-1, -1};
  Pair() {
    socketpair(AF_UNIX, SOCK_STREAM, 0, fd);
    int small = 4096;
    setsockopt(fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(fd[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    for (int f : fd) fcntl(f, F_SETFL, fcntl(f, F_GETFL) | O_NONBLOCK);
  }
  ~Pair() {
    for (int f : fd)
      if (f >= 0) close(f);
  }
  // Everything readable at the far end now.
  Bytes Take() {
    Bytes out;
    uint8_t buf[65536];
    for (;;) {
      const ssize_t n = read(fd[1], buf, sizeof buf);
      if (n <= 0) break;
      out.insert(out.end(), buf, buf + n);
    }
    return out;
  }
};

}  // namespace

void WriterCases(const std::vector<Expected>& ws) {
  Case("WriteHeader and ApplyMask write the bytes ws's Sender.frame writes", [&] {
    int n = 0;
    for (const Expected& e : ws) {
      if (e.kind != "frame") continue;
      n++;
      uint8_t h[kMaxHeader];
      const uint8_t* mask = e.mask.empty() ? nullptr : e.mask.data();
      const size_t hl = WriteHeader(h, static_cast<uint8_t>(e.opcode), e.fin != 0, e.payload.size(), mask);
      Bytes got(h, h + hl);
      Bytes p = e.payload;
      // Masked in two pieces, the second at its offset into the payload: as a sender masks parts.
      if (mask != nullptr) {
        const size_t cut = p.size() / 3;
        ApplyMask(p.data(), cut, mask);
        ApplyMask(p.data() + cut, p.size() - cut, mask, cut);
      }
      got.insert(got.end(), p.begin(), p.end());
      if (got != e.bytes) g_why = "frame " + e.name + " differs from ws's";
      CHECK(got == e.bytes);
    }
    CHECK(n >= 6);
  });
  Case("ClosePayload writes ws's close payload, the reason cut to 123 bytes on a character boundary", [&] {
    int n = 0;
    for (const Expected& e : ws) {
      if (e.kind != "close") continue;
      n++;
      uint8_t out[kMaxControl];
      const std::string reason(e.reason.begin(), e.reason.end());
      const size_t len = ClosePayload(out, static_cast<uint16_t>(e.code), reason.c_str());
      if (Bytes(out, out + len) != e.bytes) g_why = "close " + e.name + " differs from ws's";
      CHECK(len <= kMaxControl && Bytes(out, out + len) == e.bytes);
    }
    CHECK(n >= 3);
  });
}

void OutputOrderCases(const std::vector<Expected>& ws) {
  Case("Output sends whole messages, as ws frames them, from parts", [&] {
    Pair p;
    Output out(1 << 20);
    int n = 0;
    for (const Expected& e : ws) {
      if (e.kind != "frame" || e.fin == 0) continue;
      const uint8_t* mask = e.mask.empty() ? nullptr : e.mask.data();
      Bytes payload = e.payload;
      if (mask != nullptr) ApplyMask(payload.data(), payload.size(), mask);  // the caller masks (ws_output.h)
      const size_t half = payload.size() / 2;
      struct iovec parts[2] = {{payload.data(), half}, {payload.data() + half, payload.size() - half}};
      const Output::Result r = out.Send(p.fd[0], static_cast<uint8_t>(e.opcode), mask, parts, 2, payload.size());
      CHECK(r == Output::kSent || r == Output::kQueued);
      Bytes got;
      for (int spins = 0; spins < 100000; spins++) {
        const Bytes more = p.Take();
        got.insert(got.end(), more.begin(), more.end());
        if (out.queued() == 0 && got.size() >= e.bytes.size()) break;
        out.Flush(p.fd[0]);
      }
      if (got != e.bytes) g_why = "sent " + e.name + " differs from ws's frame";
      CHECK(got == e.bytes);
      n++;
    }
    CHECK(n >= 4);
  });
  Case("Output queues a partial write and flushes it, then later messages, in order", [&] {
    Pair p;
    Output out(1 << 20);
    const Bytes big = Fill(300000), small = Str("after");
    struct iovec a = {const_cast<uint8_t*>(big.data()), big.size()};
    struct iovec b = {const_cast<uint8_t*>(small.data()), small.size()};
    CHECK(out.Send(p.fd[0], kBinary, nullptr, &a, 1, big.size()) == Output::kQueued);
    CHECK(out.queued() > 0);
    // Queued behind: written after the first, never interleaved.
    CHECK(out.Send(p.fd[0], kText, nullptr, &b, 1, small.size()) == Output::kQueued);
    Bytes got;
    for (int spins = 0; spins < 1000000 && (out.queued() > 0 || got.size() < big.size() + 10 + small.size() + 2);
         spins++) {
      const Bytes more = p.Take();
      got.insert(got.end(), more.begin(), more.end());
      const Output::Result r = out.Flush(p.fd[0]);
      CHECK(r == Output::kSent || r == Output::kQueued);
    }
    CHECK(got == Cat({Frame(kBinary, big, nullptr), Frame(kText, small, nullptr)}));
    CHECK(out.Flush(p.fd[0]) == Output::kSent && out.queued() == 0);
    CHECK(out.footprint() <= out.cap());
  });
}

void OutputCapCases() {
  Case("Output refuses a message over its cap with nothing written", [&] {
    Pair p;
    Output out(20000);
    const Bytes over = Fill(20000);
    struct iovec o = {const_cast<uint8_t*>(over.data()), over.size()};
    // Over the cap on an empty queue: nothing on the wire.
    CHECK(out.Send(p.fd[0], kBinary, nullptr, &o, 1, over.size()) == Output::kRefused);
    CHECK(out.queued() == 0 && p.Take().empty());
    // Fill the socket and part of the queue, then one that would not fit behind it.
    const Bytes fill = Fill(15000);
    struct iovec f = {const_cast<uint8_t*>(fill.data()), fill.size()};
    Output::Result r = Output::kSent;
    Bytes wire;
    int sent = 0;
    while (r == Output::kSent && sent < 1000) {
      r = out.Send(p.fd[0], kBinary, nullptr, &f, 1, fill.size());
      sent++;
    }
    CHECK(r == Output::kQueued);
    const size_t q = out.queued();
    const Bytes rest = Fill(20000 - q);  // with its header, over the cap by a few bytes
    struct iovec x = {const_cast<uint8_t*>(rest.data()), rest.size()};
    CHECK(out.Send(p.fd[0], kBinary, nullptr, &x, 1, rest.size()) == Output::kRefused);
    CHECK(out.queued() == q);
    // What arrives is the whole messages sent, and not a byte of the refused one.
    for (int spins = 0; spins < 1000000 && out.queued() > 0; spins++) {
      const Bytes more = p.Take();
      wire.insert(wire.end(), more.begin(), more.end());
      out.Flush(p.fd[0]);
    }
    const Bytes more = p.Take();
    wire.insert(wire.end(), more.begin(), more.end());
    Bytes want;
    for (int i = 0; i < sent; i++) want = Cat({want, Frame(kBinary, fill, nullptr)});
    CHECK(wire == want);
  });
  // SIGPIPE is left at its default: without MSG_NOSIGNAL this case would kill the test.
  Case("Output on a socket the peer closed is kBroken (EPIPE), never SIGPIPE, and stays broken", [&] {
    Pair p;
    close(p.fd[1]);
    p.fd[1] = -1;
    Output out(1000);
    const Bytes m = Str("x");
    struct iovec v = {const_cast<uint8_t*>(m.data()), m.size()};
    CHECK(out.Send(p.fd[0], kText, nullptr, &v, 1, m.size()) == Output::kBroken);
    CHECK(out.error() == EPIPE);
    CHECK(out.Flush(p.fd[0]) == Output::kBroken);
  });
}

}  // namespace wstest
