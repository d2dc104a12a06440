// Stand-in for the Arduino_TensorFlowLite library's umbrella header (see README.md).
#ifndef EFFKERAS_STUB_TENSORFLOWLITE_H_
#define EFFKERAS_STUB_TENSORFLOWLITE_H_
#endif  // EFFKERAS_STUB_TENSORFLOWLITE_H_
