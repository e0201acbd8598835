// Bounded adaptive busy polling (issue 14), as Linux's busy_poll and Open
// vSwitch's PMD threads do it, but only after traffic: each burst a reader
// hands over (Kick) keeps Node's event loop polling every fd with a zero
// timeout for `budget` µs more, instead of sleeping in epoll_wait. A frame
// that arrives in that window is seen at once, without the wake-up of a
// sleeping process (hundreds of µs on a virtual machine whose idle vCPU
// halts). Once the budget passes with no traffic the loop sleeps again:
// nothing spins while nothing flows. Off (budget 0) by default.
//
// How: one uv_idle_t on the loop, started by Kick and stopped by its own
// callback once the deadline passes. While an idle handle is active libuv
// polls with a zero timeout; unref'd, it never keeps the process alive.
// Per burst this costs one clock read; nothing is allocated.
#pragma once

#include <napi.h>

namespace tapswitch {
namespace busy_poll {

// After a burst: keep polling for the budget from now (no-op while off).
void Kick();
// JS: setBusyPoll(usec) — 0 turns it off; at most 10 s. Throws RangeError otherwise.
void Init(Napi::Env env, Napi::Object exports);

}  // namespace busy_poll
}  // namespace tapswitch
