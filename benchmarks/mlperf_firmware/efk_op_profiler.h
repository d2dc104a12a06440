// A per-op profiler for effkeras sketches on QEMU's mps2-an386 (benchmarks/mlperf_tiny.py).
//
// The benchmark passes &efk_op_profiler to the sketch's MicroInterpreter; the interpreter
// brackets each op's invoke with BeginEvent(op name) / EndEvent. Both read the board's
// TIMER0 (a 25 MHz down-counter: under `qemu-system-arm -icount shift=0` one tick is 40
// instructions), and EndEvent prints one line per op, outside the op's bracket:
//
//     efkprof <op index> <op name> <ticks>
//
// Lines without the "EFK " prefix are log lines to the sketch protocol's client, which
// keeps them. The printing adds instructions between ops, so the whole-inference count of a
// profiled build is not the sketch's: the benchmark times whole inferences on a build
// without the profiler.
#ifndef EFK_OP_PROFILER_H_
#define EFK_OP_PROFILER_H_

#include <stdint.h>

#include "tensorflow/lite/micro/micro_profiler_interface.h"

class EfkOpProfiler : public tflite::MicroProfilerInterface {
 public:
  uint32_t BeginEvent(const char* tag) override;
  void EndEvent(uint32_t event_handle) override;

 private:
  const char* tag_ = nullptr;
  uint32_t start_ = 0;
  uint32_t index_ = 0;
};

extern EfkOpProfiler efk_op_profiler;

#endif  // EFK_OP_PROFILER_H_
