// See efk_op_profiler.h.
#include "efk_op_profiler.h"

#include <Arduino.h>

namespace {
// CMSDK TIMER0 VALUE register of the mps2-an386 (QEMU hw/arm/mps2.c); the board core
// (effkeras/deploy/firmware/efk_core.cpp) starts it at reset and never reloads it.
inline uint32_t TimerValue() { return *reinterpret_cast<volatile uint32_t*>(0x40000004u); }
}  // namespace

EfkOpProfiler efk_op_profiler;

uint32_t EfkOpProfiler::BeginEvent(const char* tag) {
  tag_ = tag;
  start_ = TimerValue();
  return 0;
}

void EfkOpProfiler::EndEvent(uint32_t) {
  const uint32_t ticks = start_ - TimerValue();  // a down-counter
  Serial.print("efkprof ");
  Serial.print(static_cast<unsigned long>(index_));
  Serial.print(' ');
  Serial.print(tag_ ? tag_ : "?");
  Serial.print(' ');
  Serial.print(static_cast<unsigned long>(ticks));
  Serial.print("\r\n");
  ++index_;
}
