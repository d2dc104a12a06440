// Stand-in for TFLite's flatbuffer schema header (see ../../../README.md): tflite::Model
// and tflite::GetModel as the sketch uses them.
#ifndef EFFKERAS_STUB_SCHEMA_GENERATED_H_
#define EFFKERAS_STUB_SCHEMA_GENERATED_H_

#include <stdint.h>

namespace tflite {

struct Model {
  uint32_t version() const;
};

const Model* GetModel(const void* buf);

}  // namespace tflite

#endif  // EFFKERAS_STUB_SCHEMA_GENERATED_H_
