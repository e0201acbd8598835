// wslink::Link's coalescing wait through the C++ API (test/unit/ws-link-native.test.ts
// builds and runs it): Start() takes any uint32 of µs (the binding caps it at kMaxCoalesceUsecs), and a wait of a
// second or more must still be a valid ppoll(2) timespec (tv_nsec below 1e9), not EINVAL, which
// ended the link (1006) after the first flood's burst.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cstdio>
#include <thread>
#include <vector>
#include "../native/ws_link.h"
using namespace tapswitch;
static void Notify(void*) {}
int main() {
  int s[2], t[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s) != 0 ||
      socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, t) != 0)
    return printf("not ok - socketpair\n"), 2;
  wslink::Options o;
  o.sock_fd = s[0];
  o.tap_fd = t[0];
  o.zero_mask = true;
  auto* l = new wslink::Link(o);
  // 40 frames queued before Start(): one burst of a flood (32 or more) that empties the queue, so a wait follows.
  uint8_t fr[64] = {};
  for (int i = 0; i < 40; i++) send(t[1], fr, sizeof fr, 0);
  l->Run(Notify, nullptr);
  l->Start(false, 0, false, 2000000);  // 2 s
  double a[wslink::L_COUNT], b[STAT_COUNT];
  for (int i = 0; i < 500; i++) {
    l->Stats(a, b);
    if (a[wslink::L_COALESCE_WAITS] >= 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (a[wslink::L_UP_FRAMES] != 40 || a[wslink::L_COALESCE_WAITS] != 1)
    return printf("not ok - %g frames up, %g waits\n", a[wslink::L_UP_FRAMES], a[wslink::L_COALESCE_WAITS]), 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the thread is in its ppoll by now
  std::vector<uint8_t>& ev = l->TakeEvents();
  for (size_t at = 0; at + 7 <= ev.size(); at += 7 + ReadBE32(&ev[at + 3]))
    if (ev[at] == wslink::E_END)
      return printf("not ok - the link ended (%d) during a 2 s wait\n", (ev[at + 1] << 8) | ev[at + 2]), 1;
  l->Terminate();
  l->Join();
  delete l;
  close(s[1]);
  close(t[0]);
  close(t[1]);
  printf("ok\n");
  return 0;
}
