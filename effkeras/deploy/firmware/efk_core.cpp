// The board core of effkeras's bare-metal builds (effkeras.deploy.build): Serial, millis()
// and micros() on the peripherals of QEMU's mps2-an386 machine (Arm's MPS2 FPGA image
// AN386: Cortex-M4 with FPU), main(), and the clock functions the library's micro_time.cpp
// reads from src/peripherals (which effkeras builds leave out). tflite::InitializeTarget and
// DebugLog come from the sketch itself (efk_tflm_port.cpp), as on a real Arduino core.
//
// Peripherals (QEMU hw/arm/mps2.c; Arm CMSDK APB components):
//   UART0  0x40004000: DATA +0x0, STATE +0x4 (bit 0 TX full, bit 1 RX full),
//                      CTRL +0x8 (bit 0 TX enable, bit 1 RX enable), BAUDDIV +0x10
//   TIMER0 0x40000000: CTRL +0x0 (bit 0 enable), VALUE +0x4 (counts down), RELOAD +0x8
// Both are clocked by the 25 MHz system clock. Under `qemu-system-arm -icount shift=0`
// one instruction is one nanosecond of virtual time, so micros() counts instructions / 1000.
//
// Builds for other boards (compile and size only) link this same core: it is a few hundred
// bytes, and nothing there runs it.
#include "Arduino.h"

#include <stdint.h>

#ifndef EFK_SYSCLK_HZ
#define EFK_SYSCLK_HZ 25000000u
#endif
#ifndef EFK_UART_BASE
#define EFK_UART_BASE 0x40004000u
#endif
#ifndef EFK_TIMER_BASE
#define EFK_TIMER_BASE 0x40000000u
#endif

namespace {

constexpr uint32_t kTicksPerUs = EFK_SYSCLK_HZ / 1000000u;

// Registers as macros, not references: the start-up code calls EfkBoardInit() before the
// C++ constructors run, so nothing here may need dynamic initialization.
#define EFK_REG(address) (*reinterpret_cast<volatile uint32_t*>(address))
#define kUartData EFK_REG(EFK_UART_BASE + 0x0u)
#define kUartState EFK_REG(EFK_UART_BASE + 0x4u)
#define kUartCtrl EFK_REG(EFK_UART_BASE + 0x8u)
#define kUartBaudDiv EFK_REG(EFK_UART_BASE + 0x10u)
#define kTimerCtrl EFK_REG(EFK_TIMER_BASE + 0x0u)
#define kTimerValue EFK_REG(EFK_TIMER_BASE + 0x4u)
#define kTimerReload EFK_REG(EFK_TIMER_BASE + 0x8u)

bool clock_started = false;
uint32_t last_value = 0;       // TIMER0 VALUE at the previous read
uint32_t tick_remainder = 0;   // ticks not yet counted as a whole microsecond
uint64_t us_total = 0;         // microseconds since the clock started
int peeked = -1;

void StartClock() {
  kTimerCtrl = 0;
  kTimerReload = 0xFFFFFFFFu;
  kTimerValue = 0xFFFFFFFFu;
  kTimerCtrl = 1u;
  last_value = 0xFFFFFFFFu;
  clock_started = true;
}

// Advances the microsecond count by the ticks since the last call (called far more often
// than the 171 s the 32-bit down-counter takes to wrap at 25 MHz).
uint64_t NowUs() {
  if (!clock_started) StartClock();
  const uint32_t value = kTimerValue;
  const uint32_t delta = last_value - value;  // down-counter: elapsed ticks, modulo 2^32
  last_value = value;
  uint32_t whole = delta / kTicksPerUs;
  tick_remainder += delta % kTicksPerUs;
  if (tick_remainder >= kTicksPerUs) {
    tick_remainder -= kTicksPerUs;
    ++whole;
  }
  us_total += whole;
  return us_total;
}

void UartPut(uint8_t c) {
  while (kUartState & 1u) {
  }
  kUartData = c;
}

}  // namespace

extern "C" unsigned long micros(void) { return static_cast<unsigned long>(NowUs()); }

extern "C" unsigned long millis(void) { return static_cast<unsigned long>(NowUs() / 1000u); }

extern "C" void delay(unsigned long ms) {
  const unsigned long start = millis();
  while (millis() - start < ms) {
  }
}

extern "C" void delayMicroseconds(unsigned int us) {
  const unsigned long start = micros();
  while (micros() - start < us) {
  }
}

// Called by the startup code before main(): the UART and the clock run from reset on.
extern "C" void EfkBoardInit(void) {
  kUartBaudDiv = EFK_SYSCLK_HZ / 115200u;
  kUartCtrl = 3u;  // TX and RX enabled
  StartClock();
}

// Writes straight to the UART (the fault handlers use it; no C++ state needed).
extern "C" void EfkUartWrite(const char* s) {
  while (*s) UartPut(static_cast<uint8_t>(*s++));
}

EfkSerial Serial;

void EfkSerial::begin(unsigned long baud) {
  if (baud > 0) kUartBaudDiv = EFK_SYSCLK_HZ / baud;
  kUartCtrl = 3u;
}

int EfkSerial::available() {
  if (peeked >= 0) return 1;
  return (kUartState & 2u) ? 1 : 0;
}

int EfkSerial::read() {
  if (peeked >= 0) {
    const int c = peeked;
    peeked = -1;
    return c;
  }
  if (!(kUartState & 2u)) return -1;
  return static_cast<int>(kUartData & 0xFFu);
}

int EfkSerial::peek() {
  if (peeked < 0) peeked = read();
  return peeked;
}

size_t EfkSerial::write(uint8_t c) {
  UartPut(c);
  return 1;
}

size_t EfkSerial::write(const char* s) {
  size_t n = 0;
  while (s[n]) UartPut(static_cast<uint8_t>(s[n++]));
  return n;
}

size_t EfkSerial::write(const uint8_t* data, size_t n) {
  for (size_t i = 0; i < n; ++i) UartPut(data[i]);
  return n;
}

size_t EfkSerial::PrintUnsigned(unsigned long long v, int base) {
  if (base < 2 || base > 16) base = 10;
  char digits[65];
  int n = 0;
  do {
    digits[n++] = "0123456789abcdef"[v % static_cast<unsigned>(base)];
    v /= static_cast<unsigned>(base);
  } while (v > 0);
  const size_t written = static_cast<size_t>(n);
  while (n > 0) UartPut(static_cast<uint8_t>(digits[--n]));
  return written;
}

size_t EfkSerial::PrintSigned(long long v, int base) {
  if (v < 0 && base == 10) {
    UartPut('-');
    return 1 + PrintUnsigned(0ull - static_cast<unsigned long long>(v), base);
  }
  return PrintUnsigned(static_cast<unsigned long long>(v), base);
}

// As Arduino's Print::printFloat: fixed point with `digits` decimals, rounded half up.
size_t EfkSerial::PrintFloat(double v, int digits) {
  if (v != v) return write("nan");
  if (v > 4294967040.0 || v < -4294967040.0) return write(v > 0 ? "inf" : "-inf");
  size_t n = 0;
  if (v < 0.0) {
    n += write(static_cast<uint8_t>('-'));
    v = -v;
  }
  double rounding = 0.5;
  for (int i = 0; i < digits; ++i) rounding /= 10.0;
  v += rounding;
  const unsigned long whole = static_cast<unsigned long>(v);
  double rest = v - static_cast<double>(whole);
  n += PrintUnsigned(whole, 10);
  if (digits > 0) n += write(static_cast<uint8_t>('.'));
  for (int i = 0; i < digits; ++i) {
    rest *= 10.0;
    const unsigned int d = static_cast<unsigned int>(rest);
    n += write(static_cast<uint8_t>('0' + d));
    rest -= d;
  }
  return n;
}

// micro_time.cpp reads its clock from the library's peripherals/utility.h.
namespace peripherals {
uint32_t MicrosecondsCounter() { return static_cast<uint32_t>(micros()); }
uint32_t MillisecondsCounter() { return static_cast<uint32_t>(millis()); }
}  // namespace peripherals

int main() {
  setup();
  for (;;) loop();
}
