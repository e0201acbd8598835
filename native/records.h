// The N-API half of the batch records (the records, their walk and the
// counters' layout are batch.h's, plain C++): a batch write's arguments and
// the slab a burst is handed over in; one definition for tap.cc,
// unixdgram.cc, poll_reader.cc and fastpath.cc.
//
// - Reading hands a burst over in a Slab: a Buffer owned by JS that we only
//   append to. Once its tail cannot hold what the next burst needs we take a
//   fresh one and drop our reference. Not a ring: JS may still hold views of
//   old bursts (queued in a ws send), which a ring would overwrite; a retired
//   slab lives exactly as long as its last view (udx-native's habit).
#pragma once

#include <napi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "batch.h"
#include "sys_error.h"

namespace tapswitch {

// The (buf, start, end) arguments of a batch write: a Buffer and integer
// offsets with 0 <= start <= end <= buf.length. False with a TypeError or
// RangeError pending.
inline bool BatchArgs(const Napi::CallbackInfo& info, const uint8_t** data, size_t* start, size_t* end) {
  Napi::Env env = info.Env();
  if (!info[0].IsBuffer() || !info[1].IsNumber() || !info[2].IsNumber()) {
    Napi::TypeError::New(env, "expected (buf: Buffer, start: number, end: number)").ThrowAsJavaScriptException();
    return false;
  }
  auto buf = info[0].As<Napi::Buffer<uint8_t>>();
  const double s = info[1].As<Napi::Number>().DoubleValue(), e = info[2].As<Napi::Number>().DoubleValue();
  if (!(s >= 0 && s <= e && e <= static_cast<double>(buf.Length())) ||
      s != static_cast<double>(static_cast<size_t>(s)) || e != static_cast<double>(static_cast<size_t>(e))) {
    Napi::RangeError::New(env, "start and end must be integers with 0 <= start <= end <= buf.length")
        .ThrowAsJavaScriptException();
    return false;
  }
  *data = buf.Data();
  *start = static_cast<size_t>(s);
  *end = static_cast<size_t>(e);
  return true;
}

// A Float64Array of at least `min` elements: where a stats() call writes its counters.
inline bool IsFloat64Array(const Napi::Value& v, size_t min) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array &&
         v.As<Napi::Float64Array>().ElementLength() >= min;
}

// A JS-owned append-only slab (see the header comment). Main thread only.
class Slab {
 public:
  // Make the tail hold `need` more bytes: else a fresh slab of at least
  // twice that (1 MiB at least), so a slab serves more than one burst.
  void Reserve(Napi::Env env, size_t need) {
    if (!ref_.IsEmpty() && len_ - off_ >= need) return;
    const size_t len = std::max(kMinSlab, 2 * need);
    Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, len);
    ref_ = Napi::Persistent(buf);  // drops our ref to the old slab; views keep it alive
    data_ = buf.Data();
    len_ = len;
    off_ = 0;
  }
  // Where the next record goes, and how much room is left there.
  uint8_t* tail() const { return data_ + off_; }
  size_t room() const { return len_ - off_; }
  // Bytes below offset() belong to JS.
  size_t offset() const { return off_; }
  // Hand `n` more bytes (written at tail()) over to JS.
  void Commit(size_t n) { off_ += n; }
  Napi::Buffer<uint8_t> Value() const { return ref_.Value(); }
  bool empty() const { return ref_.IsEmpty(); }
  // Bytes of the slab in use (0: none), and whether it is larger than the usual one (a burst's).
  size_t capacity() const { return len_; }
  bool oversized() const { return len_ > kMinSlab; }
  void Reset() {
    ref_.Reset();
    data_ = nullptr;
    len_ = off_ = 0;
  }

 private:
  static constexpr size_t kMinSlab = 1 << 20;
  Napi::Reference<Napi::Buffer<uint8_t>> ref_;
  uint8_t* data_ = nullptr;
  size_t len_ = 0, off_ = 0;
};

}  // namespace tapswitch
