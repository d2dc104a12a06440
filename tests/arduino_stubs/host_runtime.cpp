// Host implementation of the stand-in headers (see README.md), to run a generated sketch's
// serial protocol on the test machine. NOT TFLM: Invoke() runs no model.
//
// Configure with -D flags taken from the .tflite (not from the sketch's settings, so a
// wrong model_settings.h makes the sketch's own checks fail):
//   STUB_INPUT_TYPE, STUB_INPUT_BYTES       input tensor type (kTfLite...) and bytes
//   STUB_OUTPUT_TYPE, STUB_OUTPUT_ELEMENTS  output tensor type and element count
//   STUB_OUTPUT_SCALE, STUB_OUTPUT_ZERO_POINT
// The fake Invoke() sets output element (sum of the input's bytes) % STUB_OUTPUT_ELEMENTS
// to the type's maximum and every other element to its minimum, so the argmax tells which
// input the sketch fed. Time: millis() is a virtual clock that main() advances by 100 ms
// per loop(); micros() is real. Usage: ./sketch [loops] < commands

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "Arduino.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

void setup();
void loop();

namespace {
std::string stdin_data;
size_t stdin_pos = 0;
bool stdin_loaded = false;
unsigned long virtual_ms = 0;
const auto start_time = std::chrono::steady_clock::now();

void LoadStdin() {
  if (stdin_loaded) return;
  stdin_loaded = true;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), stdin)) > 0) stdin_data.append(buffer, n);
}

size_t Out(const std::string& text) {
  fwrite(text.data(), 1, text.size(), stdout);
  return text.size();
}

std::string InBase(unsigned long value, int base) {
  if (value == 0) return "0";
  std::string digits;
  while (value > 0) {
    digits.insert(digits.begin(), "0123456789ABCDEF"[value % static_cast<unsigned long>(base)]);
    value /= static_cast<unsigned long>(base);
  }
  return digits;
}

uint32_t ReadU32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

alignas(16) unsigned char input_buffer[STUB_INPUT_BYTES];
alignas(16) unsigned char output_buffer[STUB_OUTPUT_ELEMENTS * 8];
TfLiteTensor input_tensor;
TfLiteTensor output_tensor;
const tflite::MicroOpResolver* resolver = nullptr;
}  // namespace

// ---- Arduino ----
HardwareSerial Serial;

size_t Print::print(const char* text) { return Out(text); }
size_t Print::print(char c) { return Out(std::string(1, c)); }
size_t Print::print(unsigned char value, int base) { return print(static_cast<unsigned long>(value), base); }
size_t Print::print(int value, int base) { return print(static_cast<long>(value), base); }
size_t Print::print(unsigned int value, int base) { return print(static_cast<unsigned long>(value), base); }
size_t Print::print(long value, int base) {
  if (value < 0 && base == DEC) return Out("-" + InBase(static_cast<unsigned long>(-value), base));
  return Out(InBase(static_cast<unsigned long>(value), base));
}
size_t Print::print(unsigned long value, int base) { return Out(InBase(value, base)); }
size_t Print::print(double value, int digits) {
  if (value != value) return Out("nan");
  if (value > 4294967040.0 || value < -4294967040.0) return Out("ovf");
  char buffer[64];
  snprintf(buffer, sizeof(buffer), "%.*f", digits, value);
  return Out(buffer);
}
size_t Print::println(const char* text) { return print(text) + Out("\r\n"); }
size_t Print::println() { return Out("\r\n"); }

int Stream::available() {
  LoadStdin();
  return static_cast<int>(stdin_data.size() - stdin_pos);
}
int Stream::read() {
  LoadStdin();
  if (stdin_pos >= stdin_data.size()) return -1;
  return static_cast<unsigned char>(stdin_data[stdin_pos++]);
}
void HardwareSerial::begin(unsigned long) {}
HardwareSerial::operator bool() { return true; }

unsigned long millis() { return virtual_ms; }
unsigned long micros() {
  auto elapsed = std::chrono::steady_clock::now() - start_time;
  return static_cast<unsigned long>(
      std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count());
}
void delay(unsigned long ms) { virtual_ms += ms; }

// ---- TFLM ----
void MicroPrintf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
  fputc('\n', stderr);
}

namespace tflite {
void InitializeTarget() {}

// The root table's first field (Model.version) read from the real flatbuffer.
uint32_t Model::version() const {
  const unsigned char* buf = reinterpret_cast<const unsigned char*>(this);
  const uint32_t table = ReadU32(buf);
  const int32_t vtable = static_cast<int32_t>(table) - static_cast<int32_t>(ReadU32(buf + table));
  const unsigned int field = buf[vtable + 4] | (buf[vtable + 5] << 8);
  return field == 0 ? 0 : ReadU32(buf + table + field);
}

const Model* GetModel(const void* buf) { return reinterpret_cast<const Model*>(buf); }

MicroInterpreter::MicroInterpreter(const Model*, const MicroOpResolver& op_resolver,
                                   uint8_t* tensor_arena, size_t tensor_arena_size,
                                   MicroResourceVariables*, MicroProfilerInterface*, bool)
    : arena_(tensor_arena), arena_size_(tensor_arena_size) {
  resolver = &op_resolver;
}

TfLiteStatus MicroInterpreter::AllocateTensors() {
  fprintf(stderr, "STUB arena_size=%lu registered=", static_cast<unsigned long>(arena_size_));
  for (unsigned int i = 0; i < resolver->RegisteredCount(); ++i) {
    fprintf(stderr, "%s%s", i ? "," : "", resolver->RegisteredName(i));
  }
  fprintf(stderr, "\n");
  if ((reinterpret_cast<uintptr_t>(arena_) % 16) != 0) return kTfLiteError;
  input_tensor.type = STUB_INPUT_TYPE;
  input_tensor.bytes = STUB_INPUT_BYTES;
  input_tensor.data.raw = reinterpret_cast<char*>(input_buffer);
  output_tensor.type = STUB_OUTPUT_TYPE;
  output_tensor.params.scale = STUB_OUTPUT_SCALE;
  output_tensor.params.zero_point = STUB_OUTPUT_ZERO_POINT;
  size_t element = 4;
  if (STUB_OUTPUT_TYPE == kTfLiteInt8 || STUB_OUTPUT_TYPE == kTfLiteUInt8) element = 1;
  if (STUB_OUTPUT_TYPE == kTfLiteInt16) element = 2;
  output_tensor.bytes = STUB_OUTPUT_ELEMENTS * element;
  output_tensor.data.raw = reinterpret_cast<char*>(output_buffer);
  return kTfLiteOk;
}

TfLiteStatus MicroInterpreter::Invoke() {
  unsigned long sum = 0;
  for (size_t i = 0; i < STUB_INPUT_BYTES; ++i) sum += input_buffer[i];
  const int hot = static_cast<int>(sum % STUB_OUTPUT_ELEMENTS);
  for (int i = 0; i < STUB_OUTPUT_ELEMENTS; ++i) {
    const bool on = i == hot;
    switch (output_tensor.type) {
      case kTfLiteInt8: output_tensor.data.int8[i] = on ? 127 : -128; break;
      case kTfLiteUInt8: output_tensor.data.uint8[i] = on ? 255 : 0; break;
      case kTfLiteInt16: output_tensor.data.i16[i] = on ? 32767 : -32768; break;
      case kTfLiteInt32: output_tensor.data.i32[i] = on ? 1000 : -1000; break;
      default: output_tensor.data.f[i] = on ? 1.0f : 0.0f; break;
    }
  }
  return kTfLiteOk;
}

TfLiteTensor* MicroInterpreter::input(size_t) { return &input_tensor; }
TfLiteTensor* MicroInterpreter::output(size_t) { return &output_tensor; }
size_t MicroInterpreter::arena_used_bytes() const { return 1234; }
}  // namespace tflite

int main(int argc, char** argv) {
  const int loops = argc > 1 ? atoi(argv[1]) : 200;
  setup();
  for (int i = 0; i < loops; ++i) {
    loop();
    virtual_ms += 100;
  }
  return 0;
}
