// Stand-in for TFLM's micro_interpreter.h (see ../../../README.md): the constructor,
// AllocateTensors, Invoke, input, output and arena_used_bytes, with the signatures of
// tflite-micro's tensorflow/lite/micro/micro_interpreter.h.
#ifndef EFFKERAS_STUB_MICRO_INTERPRETER_H_
#define EFFKERAS_STUB_MICRO_INTERPRETER_H_

#include <stddef.h>
#include <stdint.h>

#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#define TFLITE_SCHEMA_VERSION (3)

namespace tflite {

class MicroResourceVariables;
class MicroProfilerInterface;

class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& op_resolver,
                   uint8_t* tensor_arena, size_t tensor_arena_size,
                   MicroResourceVariables* resource_variables = nullptr,
                   MicroProfilerInterface* profiler = nullptr,
                   bool preserve_all_tensors = false);

  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  size_t arena_used_bytes() const;

 private:
  uint8_t* arena_;
  size_t arena_size_;
};

}  // namespace tflite

#endif  // EFFKERAS_STUB_MICRO_INTERPRETER_H_
