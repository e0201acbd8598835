// The read side every class of the addon shares (Tap, UnixDgram): a uv_poll_t
// on a non-blocking fd, a JS-owned append-only slab, and one MakeCallback per
// readable event with the burst as [u32 BE length][record] records.
//
// - Readiness comes from uv_poll on Node's own loop (napi_get_uv_event_loop,
//   so it also works inside a worker), never from fs.read: that parks a
//   threadpool thread per fd and closing the fd does not wake it
//   (nodejs/node#24048). A non-blocking fd plus uv_poll costs no thread.
// - Frames land in a Slab (records.h), a Buffer owned by JS that we only
//   append to, as [u32 BE length][record] records; once the tail cannot hold
//   one more whole burst we take a fresh slab.
// - Lifetime: while polling, the owner's JS object holds a strong
//   self-reference, as the poll handle points at it. The uv_poll_t lives in a
//   small heap box that only its uv_close callback frees, so close() is safe
//   from inside the callback. An async env-cleanup hook closes the handle when
//   a worker's env goes away, before Node unloads the addon (else libuv would
//   call unmapped code).
// - What one read is (read, readv, recvfrom), and which reads are dropped, is
//   the owner's: it implements Source. Nothing here allocates per frame.
#pragma once

#include <napi.h>
#include <uv.h>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "records.h"
#include "sys_error.h"

namespace tapswitch {

class PollReader {
 public:
  // ReadRecord's answers besides a record length.
  static constexpr ssize_t kEnd = -1;   // EAGAIN, EOF or an error (counted): end the burst
  static constexpr ssize_t kSkip = -2;  // one read dropped (counted): it still counts toward the burst bound

  class Source {
   public:
    // Read one record's payload into dst (room for max_record bytes) and
    // return its length, or kEnd / kSkip. Retries EINTR itself.
    virtual ssize_t ReadRecord(uint8_t* dst) = 0;

   protected:
    ~Source() = default;
  };

  // `owner` is the ObjectWrap (Ref'd while polling, the callback's `this`);
  // `stats` its STAT_COUNT counters: we count RX_FRAMES, RX_BYTES, RX_ERRORS.
  PollReader(Napi::Reference<Napi::Object>* owner, Source* source, double* stats, const char* resource)
      : owner_(owner), source_(source), stats_(stats), resource_(resource) {}
  ~PollReader() { CloseHandle(); }
  PollReader(const PollReader&) = delete;
  PollReader& operator=(const PollReader&) = delete;

  // Start polling `fd`: each burst is at most `max_reads` reads and about
  // `max_bytes` bytes; one record is at most `max_record` bytes. Returns 0;
  // or -errno with *syscall set, for the owner to throw with its own hints;
  // or kPending when a JS exception is already pending.
  static constexpr int kPending = 1;
  int Start(Napi::Env env, int fd, Napi::Function on_burst, uint32_t max_reads, uint32_t max_bytes, size_t max_record,
            const char** syscall);
  // Stop polling (idempotent); the handle stays for the next Start.
  void Stop();
  // Stop, close the handle and drop the slab. Idempotent, safe from inside the callback.
  void Close();
  // Close the handle only: no JS (finalizers, env teardown). Before the owner closes the fd.
  void CloseHandle();

  bool polling() const { return polling_; }
  bool started() const { return poll_ != nullptr; }
  // Bytes at the head of each record that are not frame (kept virtio-net
  // header): RX_BYTES counts frame bytes only.
  void set_record_header(size_t len) { record_header_ = len; }

 private:
  struct PollBox {
    uv_poll_t handle;
    PollReader* reader;  // nullptr once closing
    napi_async_cleanup_hook_handle hook;
  };

  size_t SlabReserve() const { return kRecordHeader + max_record_ + max_bytes_; }
  void OnReadable(int status);
  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnPollClosed(uv_handle_t* handle);
  static void OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg);

  Napi::Reference<Napi::Object>* owner_;
  Source* source_;
  double* stats_;
  const char* resource_;
  PollBox* poll_ = nullptr;
  bool polling_ = false;
  uint32_t max_reads_ = 0, max_bytes_ = 0;
  size_t max_record_ = 0, record_header_ = 0;
  Napi::FunctionReference on_burst_;
  std::unique_ptr<Napi::AsyncContext> async_;
  Slab slab_;
};

// The body of both classes' stats(out): copy the counters into a Float64Array.
void CopyStats(const Napi::CallbackInfo& info, const double* stats);

}  // namespace tapswitch
