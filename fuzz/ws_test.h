// What the C++ tests of the native WebSocket code share (fuzz/ws_frame_test.cc,
// fuzz/ws_output_test.cc): the CHECK and Case harness, frames as a peer
// writes them, readers drained into what they handed out, and ws's frames.
#pragma once

#include <string.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "../native/ws_frame.h"
#include "../native/ws_output.h"

namespace wstest {

using namespace tapswitch::ws;
using Bytes = std::vector<uint8_t>;

inline int g_failed_cases = 0;
inline bool g_case_ok = true;
inline std::string g_why;

#define CHECK(c)                                                                        \
  do {                                                                                  \
    if (!(c)) {                                                                         \
      if (g_case_ok) g_why = std::string("line ") + std::to_string(__LINE__) + ": " #c; \
      g_case_ok = false;                                                                \
    }                                                                                   \
  } while (0)

template <typename F>
void Case(const char* name, F body) {
  g_case_ok = true;
  g_why.clear();
  body();
  if (g_case_ok) {
    printf("ok - %s\n", name);
  } else {
    printf("not ok - %s: %s\n", name, g_why.c_str());
    g_failed_cases++;
  }
}

constexpr uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};
constexpr uint8_t kZeroMask[4] = {0, 0, 0, 0};

inline Bytes Str(const std::string& s) { return Bytes(s.begin(), s.end()); }
inline Bytes Fill(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; i++) b[i] = static_cast<uint8_t>(i * 131 + 7);
  return b;
}
inline Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// One frame as a peer writes it (WriteHeader and ApplyMask are checked against ws's bytes below).
inline Bytes Frame(uint8_t op, const Bytes& payload, const uint8_t* mask, bool fin = true) {
  uint8_t h[kMaxHeader];
  const size_t n = WriteHeader(h, op, fin, payload.size(), mask);
  Bytes out(h, h + n);
  Bytes p = payload;
  if (mask != nullptr) ApplyMask(p.data(), p.size(), mask);
  out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct Got {
  std::vector<std::pair<uint8_t, Bytes>> msgs;
  uint16_t code = 0;
  bool operator==(const Got& o) const { return msgs == o.msgs && code == o.code; }
};

// Drain every whole message into `g`; false once failed.
inline bool Drain(Reader* r, Got* g) {
  for (;;) {
    Message m;
    const Reader::Result res = r->Next(&m);
    if (res == Reader::kNeedMore) return true;
    if (res == Reader::kError) {
      g->code = r->close_code();
      return false;
    }
    g->msgs.emplace_back(m.opcode, Bytes(m.data, m.data + m.len));
  }
}

inline Got ReadAll(Role role, size_t max, const Bytes& stream) {
  Reader r(role, max);
  Got g;
  CHECK(r.Feed(stream.data(), stream.size()));
  Drain(&r, &g);
  return g;
}

// The code a stream fails with when fed whole (0: none).
inline uint16_t FailsWith(Role role, size_t max, const Bytes& stream) { return ReadAll(role, max, stream).code; }

inline Got OneByteAtATime(Reader* r, const Bytes& stream) {
  Got g;
  for (uint8_t b : stream) {
    size_t room = 0;
    uint8_t* at = r->ReadPtr(&room);
    if (at == nullptr || room == 0) break;
    *at = b;
    r->Commit(1);
    if (!Drain(r, &g)) break;
  }
  return g;
}

// ws's frames (line: frame <name> <opcode> <fin> <mask hex|-> <payload hex|-> <frame hex>) and close
// payloads (line: close <name> <code> <reason hex|-> <payload hex>), from test/unit/ws-native.test.ts.
struct Expected {
  std::string kind, name;
  int opcode = 0, fin = 1, code = 0;
  Bytes mask, payload, reason, bytes;
};

// The case groups, one function each (ws_frame_test.cc's main runs them in order).
void ReaderSplitCases();
void ReaderBoundCases();
void RoleAndBitCases();
void LengthAndSequenceCases();
void WriterCases(const std::vector<Expected>& ws);
void OutputOrderCases(const std::vector<Expected>& ws);
void OutputCapCases();

}  // namespace wstest
