// Wire.h for effkeras's bare-metal builds: no I2C; present so headers that include it compile.
#ifndef EFFKERAS_FIRMWARE_WIRE_H_
#define EFFKERAS_FIRMWARE_WIRE_H_
#include "Arduino.h"
#endif  // EFFKERAS_FIRMWARE_WIRE_H_
