// wslink::Link under ThreadSanitizer and AddressSanitizer/UBSan
// (test/unit/ws-link-sanitizers.test.ts builds and runs it): the link's
// thread bursts a TAP (a SEQPACKET pair) and parses a hostile switch's
// stream (a socketpair: a welcome, batches, pings, sometimes a close) while
// "JS" (another thread) sends texts, pings and a close, takes events and reads
// counters, then terminates and joins it mid-burst. Any race or memory error
// is the sanitizer's report; every round must end with the end event last.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>
#include "../native/ws_link.h"
using namespace tapswitch;
static std::atomic<int> notes{0};
static void Notify(void*) { notes++; }
static std::vector<uint8_t> Frame(uint8_t op, const std::vector<uint8_t>& p) {
  std::vector<uint8_t> f(14 + p.size());
  size_t h = ws::WriteHeader(f.data(), op, true, p.size(), nullptr);
  memcpy(f.data() + h, p.data(), p.size());
  f.resize(h + p.size());
  return f;
}
static void WriteAll(int fd, const std::vector<uint8_t>& b) {
  size_t o = 0;
  while (o < b.size()) {
    ssize_t w = write(fd, b.data() + o, b.size() - o);
    if (w < 0) {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, 50);
      continue;
    }
    o += w;
  }
}
int main(int argc, char** argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 50;
  for (int round = 0; round < rounds; round++) {
    int s[2], t[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s);
    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, t);
    wslink::Options o;
    o.sock_fd = s[0];
    o.tap_fd = t[0];
    o.zero_mask = round & 1;
    o.high_water = 4096;
    auto* l = new wslink::Link(o);
    l->Run(Notify, nullptr);
    std::atomic<bool> done{false};
    int ends = 0;  // end events "JS" took (its thread's alone until joined)
    // JS: pings, texts, take events, stats, while the thread bursts.
    std::thread js([&] {
      uint8_t p[10] = {1, 2, 3};
      double a[wslink::L_COUNT], b[STAT_COUNT];
      for (int i = 0; !done; i++) {
        l->SendControl(i % 3 == 0 ? ws::kText : ws::kPing, p, sizeof p);
        std::vector<uint8_t>& ev = l->TakeEvents();
        for (size_t at = 0; at + 7 <= ev.size(); at += 7 + ReadBE32(&ev[at + 3]))
          if (ev[at] == wslink::E_END) ends++;
        ev.clear();
        l->Stats(a, b);
        l->Queued();
        // Following on (its affinity calls race too); every other round coalescing too (its waits race with all this).
        if (i == 5) l->Start(false, 64, false, round % 2 == 0 ? 1000 : 0);
        std::this_thread::yield();
      }
    });
    // Switch: welcome, batches, pings; the TAP: frames in.
    std::thread sw([&] {
      WriteAll(s[1], Frame(ws::kText, std::vector<uint8_t>(20, 'w')));
      std::vector<uint8_t> batch;
      for (int k = 0; k < 4; k++) {
        uint8_t h[4];
        WriteBE32(h, 60);
        batch.insert(batch.end(), h, h + 4);
        batch.insert(batch.end(), 60, 0xab);
      }
      uint8_t fr[100] = {};
      for (int i = 0; i < 300; i++) {
        WriteAll(s[1], Frame(ws::kBinary, batch));
        WriteAll(s[1], Frame(ws::kPing, {1}));
        // Now and then a flood's burst (32 frames or more): with coalescing on, the TAP waits after it.
        for (int k = 0; k < (i % 50 == 0 ? 40 : 1); k++) send(t[1], fr, sizeof fr, MSG_DONTWAIT);
        uint8_t sink[65536];
        while (read(s[1], sink, sizeof sink) > 0) {}
        while (recv(t[1], sink, sizeof sink, MSG_DONTWAIT) > 0) {}
      }
      if (round % 3 == 0) WriteAll(s[1], Frame(ws::kClose, {0x03, 0xe8}));
    });
    sw.join();
    if (round % 3 == 1) l->SendControl(ws::kClose, nullptr, 0);
    l->Terminate();
    done = true;
    js.join();
    l->Join();
    std::vector<uint8_t>& ev = l->TakeEvents();
    for (size_t at = 0; at + 7 <= ev.size(); at += 7 + ReadBE32(&ev[at + 3]))
      if (ev[at] == wslink::E_END) ends++;
    if (ends != 1) {
      printf("not ok - round %d: %d end events, not one\n", round, ends);
      delete l;
      return 1;
    }
    delete l;
    close(s[1]);
    close(t[0]);
    close(t[1]);
  }
  printf("ok %d rounds, %d notes\n", rounds, notes.load());
  return 0;
}
