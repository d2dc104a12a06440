// Stand-in for TFLM's micro_log.h (see ../../../README.md).
#ifndef EFFKERAS_STUB_MICRO_LOG_H_
#define EFFKERAS_STUB_MICRO_LOG_H_

void MicroPrintf(const char* format, ...);

#endif  // EFFKERAS_STUB_MICRO_LOG_H_
