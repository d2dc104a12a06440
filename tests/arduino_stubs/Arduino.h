// Stand-in for the Arduino core's Arduino.h (see README.md): only what the generated
// sketch uses, with the core's signatures (ArduinoCore-API Print/Stream).
#ifndef EFFKERAS_STUB_ARDUINO_H_
#define EFFKERAS_STUB_ARDUINO_H_

#include <stddef.h>
#include <stdint.h>

#define DEC 10
#define HEX 16

class Print {
 public:
  size_t print(const char* text);
  size_t print(char c);
  size_t print(unsigned char value, int base = DEC);
  size_t print(int value, int base = DEC);
  size_t print(unsigned int value, int base = DEC);
  size_t print(long value, int base = DEC);
  size_t print(unsigned long value, int base = DEC);
  size_t print(double value, int digits = 2);
  size_t println(const char* text);
  size_t println();
};

class Stream : public Print {
 public:
  int available();
  int read();
};

class HardwareSerial : public Stream {
 public:
  void begin(unsigned long baud);
  explicit operator bool();
};

extern HardwareSerial Serial;

unsigned long millis();
unsigned long micros();
void delay(unsigned long ms);

#endif  // EFFKERAS_STUB_ARDUINO_H_
