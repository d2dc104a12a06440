// Arduino.h for effkeras's bare-metal builds (effkeras.deploy.build): the small part of the
// Arduino core API that the generated sketches and the Arduino_TensorFlowLite library use.
// Written for effkeras; it is not the Arduino core. Serial is the board's UART (CMSDK
// UART0 on QEMU's mps2-an386); millis()/micros() count a hardware timer.
#ifndef EFFKERAS_FIRMWARE_ARDUINO_H_
#define EFFKERAS_FIRMWARE_ARDUINO_H_

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif
unsigned long millis(void);
unsigned long micros(void);
void delay(unsigned long ms);
void delayMicroseconds(unsigned int us);
#ifdef __cplusplus
}  // extern "C"

#define DEC 10
#define HEX 16

typedef unsigned long ulong;

// Serial: blocking writes, non-blocking reads, as on an Arduino board.
class EfkSerial {
 public:
  void begin(unsigned long baud);
  void end() {}
  explicit operator bool() const { return true; }
  int available();
  int read();
  int peek();
  void flush() {}
  size_t write(uint8_t c);
  size_t write(const char* s);
  size_t write(const uint8_t* data, size_t n);

  size_t print(const char* s) { return write(s); }
  size_t print(char c) { return write(static_cast<uint8_t>(c)); }
  size_t print(unsigned char v, int base = DEC) { return PrintUnsigned(v, base); }
  size_t print(int v, int base = DEC) { return PrintSigned(v, base); }
  size_t print(unsigned int v, int base = DEC) { return PrintUnsigned(v, base); }
  size_t print(long v, int base = DEC) { return PrintSigned(v, base); }
  size_t print(unsigned long v, int base = DEC) { return PrintUnsigned(v, base); }
  size_t print(long long v, int base = DEC) { return PrintSigned(v, base); }
  size_t print(unsigned long long v, int base = DEC) { return PrintUnsigned(v, base); }
  size_t print(double v, int digits = 2) { return PrintFloat(v, digits); }

  size_t println() { return write("\r\n"); }
  template <typename T>
  size_t println(T v) {
    const size_t n = print(v);
    return n + println();
  }
  template <typename T>
  size_t println(T v, int extra) {
    const size_t n = print(v, extra);
    return n + println();
  }

 private:
  size_t PrintUnsigned(unsigned long long v, int base);
  size_t PrintSigned(long long v, int base);
  size_t PrintFloat(double v, int digits);
};

extern EfkSerial Serial;

// A fixed-size ring buffer of chars (the library's system_setup.cpp uses one on the
// Nano 33 BLE; kept here so that file compiles against this core too).
template <int N>
class RingBufferN {
 public:
  uint8_t _aucBuffer[N];
  void store_char(uint8_t c) {
    if (count_ < N) {
      _aucBuffer[head_] = c;
      head_ = (head_ + 1) % N;
      ++count_;
    }
  }
  void clear() { head_ = tail_ = count_ = 0; }
  int read_char() {
    if (count_ == 0) return -1;
    const uint8_t c = _aucBuffer[tail_];
    tail_ = (tail_ + 1) % N;
    --count_;
    return c;
  }
  int available() const { return count_; }
  int availableForStore() const { return N - count_; }

 private:
  int head_ = 0;
  int tail_ = 0;
  int count_ = 0;
};

void setup();
void loop();

#endif  // __cplusplus

#endif  // EFFKERAS_FIRMWARE_ARDUINO_H_
