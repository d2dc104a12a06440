// Stand-in for TFLM's system_setup.h (see ../../../README.md).
#ifndef EFFKERAS_STUB_SYSTEM_SETUP_H_
#define EFFKERAS_STUB_SYSTEM_SETUP_H_

namespace tflite {
void InitializeTarget();
}  // namespace tflite

#endif  // EFFKERAS_STUB_SYSTEM_SETUP_H_
