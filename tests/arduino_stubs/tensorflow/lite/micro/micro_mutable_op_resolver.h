// Stand-in for TFLM's micro_mutable_op_resolver.h (see ../../../README.md).
//
// The real class template registers kernels; this one records the BuiltinOperator names,
// and fails like the real one when an op is added twice or more than tOpCount ops are
// added. The Add* methods are the builtin ones of tflite-micro's
// tensorflow/lite/micro/micro_mutable_op_resolver.h (2025, plus AddDynamicUpdateSlice and
// AddReduceAll); the real ones take an optional registration argument.
#ifndef EFFKERAS_STUB_MICRO_MUTABLE_OP_RESOLVER_H_
#define EFFKERAS_STUB_MICRO_MUTABLE_OP_RESOLVER_H_

#include <string.h>

#include "tensorflow/lite/c/common.h"

namespace tflite {

class MicroOpResolver {
 public:
  virtual ~MicroOpResolver() {}
  virtual unsigned int RegisteredCount() const = 0;
  virtual const char* RegisteredName(unsigned int i) const = 0;
};

template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
  MicroMutableOpResolver() : count_(0) {}

  unsigned int RegisteredCount() const override { return count_; }
  const char* RegisteredName(unsigned int i) const override { return names_[i]; }

  TfLiteStatus AddAbs() { return AddBuiltin("ABS"); }
  TfLiteStatus AddAdd() { return AddBuiltin("ADD"); }
  TfLiteStatus AddAddN() { return AddBuiltin("ADD_N"); }
  TfLiteStatus AddArgMax() { return AddBuiltin("ARG_MAX"); }
  TfLiteStatus AddArgMin() { return AddBuiltin("ARG_MIN"); }
  TfLiteStatus AddAssignVariable() { return AddBuiltin("ASSIGN_VARIABLE"); }
  TfLiteStatus AddAveragePool2D() { return AddBuiltin("AVERAGE_POOL_2D"); }
  TfLiteStatus AddBatchMatMul() { return AddBuiltin("BATCH_MATMUL"); }
  TfLiteStatus AddBatchToSpaceNd() { return AddBuiltin("BATCH_TO_SPACE_ND"); }
  TfLiteStatus AddBroadcastArgs() { return AddBuiltin("BROADCAST_ARGS"); }
  TfLiteStatus AddBroadcastTo() { return AddBuiltin("BROADCAST_TO"); }
  TfLiteStatus AddCallOnce() { return AddBuiltin("CALL_ONCE"); }
  TfLiteStatus AddCast() { return AddBuiltin("CAST"); }
  TfLiteStatus AddCeil() { return AddBuiltin("CEIL"); }
  TfLiteStatus AddConcatenation() { return AddBuiltin("CONCATENATION"); }
  TfLiteStatus AddConv2D() { return AddBuiltin("CONV_2D"); }
  TfLiteStatus AddCos() { return AddBuiltin("COS"); }
  TfLiteStatus AddCumSum() { return AddBuiltin("CUMSUM"); }
  TfLiteStatus AddDepthToSpace() { return AddBuiltin("DEPTH_TO_SPACE"); }
  TfLiteStatus AddDepthwiseConv2D() { return AddBuiltin("DEPTHWISE_CONV_2D"); }
  TfLiteStatus AddDequantize() { return AddBuiltin("DEQUANTIZE"); }
  TfLiteStatus AddDiv() { return AddBuiltin("DIV"); }
  TfLiteStatus AddDynamicUpdateSlice() { return AddBuiltin("DYNAMIC_UPDATE_SLICE"); }
  TfLiteStatus AddElu() { return AddBuiltin("ELU"); }
  TfLiteStatus AddEmbeddingLookup() { return AddBuiltin("EMBEDDING_LOOKUP"); }
  TfLiteStatus AddEqual() { return AddBuiltin("EQUAL"); }
  TfLiteStatus AddExp() { return AddBuiltin("EXP"); }
  TfLiteStatus AddExpandDims() { return AddBuiltin("EXPAND_DIMS"); }
  TfLiteStatus AddFill() { return AddBuiltin("FILL"); }
  TfLiteStatus AddFloor() { return AddBuiltin("FLOOR"); }
  TfLiteStatus AddFloorDiv() { return AddBuiltin("FLOOR_DIV"); }
  TfLiteStatus AddFloorMod() { return AddBuiltin("FLOOR_MOD"); }
  TfLiteStatus AddFullyConnected() { return AddBuiltin("FULLY_CONNECTED"); }
  TfLiteStatus AddGather() { return AddBuiltin("GATHER"); }
  TfLiteStatus AddGatherNd() { return AddBuiltin("GATHER_ND"); }
  TfLiteStatus AddGreater() { return AddBuiltin("GREATER"); }
  TfLiteStatus AddGreaterEqual() { return AddBuiltin("GREATER_EQUAL"); }
  TfLiteStatus AddHardSwish() { return AddBuiltin("HARD_SWISH"); }
  TfLiteStatus AddIf() { return AddBuiltin("IF"); }
  TfLiteStatus AddL2Normalization() { return AddBuiltin("L2_NORMALIZATION"); }
  TfLiteStatus AddL2Pool2D() { return AddBuiltin("L2_POOL_2D"); }
  TfLiteStatus AddLeakyRelu() { return AddBuiltin("LEAKY_RELU"); }
  TfLiteStatus AddLess() { return AddBuiltin("LESS"); }
  TfLiteStatus AddLessEqual() { return AddBuiltin("LESS_EQUAL"); }
  TfLiteStatus AddLog() { return AddBuiltin("LOG"); }
  TfLiteStatus AddLogSoftmax() { return AddBuiltin("LOG_SOFTMAX"); }
  TfLiteStatus AddLogicalAnd() { return AddBuiltin("LOGICAL_AND"); }
  TfLiteStatus AddLogicalNot() { return AddBuiltin("LOGICAL_NOT"); }
  TfLiteStatus AddLogicalOr() { return AddBuiltin("LOGICAL_OR"); }
  TfLiteStatus AddLogistic() { return AddBuiltin("LOGISTIC"); }
  TfLiteStatus AddMaxPool2D() { return AddBuiltin("MAX_POOL_2D"); }
  TfLiteStatus AddMaximum() { return AddBuiltin("MAXIMUM"); }
  TfLiteStatus AddMean() { return AddBuiltin("MEAN"); }
  TfLiteStatus AddMinimum() { return AddBuiltin("MINIMUM"); }
  TfLiteStatus AddMirrorPad() { return AddBuiltin("MIRROR_PAD"); }
  TfLiteStatus AddMul() { return AddBuiltin("MUL"); }
  TfLiteStatus AddNeg() { return AddBuiltin("NEG"); }
  TfLiteStatus AddNotEqual() { return AddBuiltin("NOT_EQUAL"); }
  TfLiteStatus AddPack() { return AddBuiltin("PACK"); }
  TfLiteStatus AddPad() { return AddBuiltin("PAD"); }
  TfLiteStatus AddPadV2() { return AddBuiltin("PADV2"); }
  TfLiteStatus AddPrelu() { return AddBuiltin("PRELU"); }
  TfLiteStatus AddQuantize() { return AddBuiltin("QUANTIZE"); }
  TfLiteStatus AddReadVariable() { return AddBuiltin("READ_VARIABLE"); }
  TfLiteStatus AddReduceAll() { return AddBuiltin("REDUCE_ALL"); }
  TfLiteStatus AddReduceMax() { return AddBuiltin("REDUCE_MAX"); }
  TfLiteStatus AddReduceMin() { return AddBuiltin("REDUCE_MIN"); }
  TfLiteStatus AddRelu() { return AddBuiltin("RELU"); }
  TfLiteStatus AddRelu6() { return AddBuiltin("RELU6"); }
  TfLiteStatus AddReshape() { return AddBuiltin("RESHAPE"); }
  TfLiteStatus AddResizeBilinear() { return AddBuiltin("RESIZE_BILINEAR"); }
  TfLiteStatus AddResizeNearestNeighbor() { return AddBuiltin("RESIZE_NEAREST_NEIGHBOR"); }
  TfLiteStatus AddReverseV2() { return AddBuiltin("REVERSE_V2"); }
  TfLiteStatus AddRound() { return AddBuiltin("ROUND"); }
  TfLiteStatus AddRsqrt() { return AddBuiltin("RSQRT"); }
  TfLiteStatus AddSelectV2() { return AddBuiltin("SELECT_V2"); }
  TfLiteStatus AddShape() { return AddBuiltin("SHAPE"); }
  TfLiteStatus AddSin() { return AddBuiltin("SIN"); }
  TfLiteStatus AddSlice() { return AddBuiltin("SLICE"); }
  TfLiteStatus AddSoftmax() { return AddBuiltin("SOFTMAX"); }
  TfLiteStatus AddSpaceToBatchNd() { return AddBuiltin("SPACE_TO_BATCH_ND"); }
  TfLiteStatus AddSpaceToDepth() { return AddBuiltin("SPACE_TO_DEPTH"); }
  TfLiteStatus AddSplit() { return AddBuiltin("SPLIT"); }
  TfLiteStatus AddSplitV() { return AddBuiltin("SPLIT_V"); }
  TfLiteStatus AddSqrt() { return AddBuiltin("SQRT"); }
  TfLiteStatus AddSquare() { return AddBuiltin("SQUARE"); }
  TfLiteStatus AddSquaredDifference() { return AddBuiltin("SQUARED_DIFFERENCE"); }
  TfLiteStatus AddSqueeze() { return AddBuiltin("SQUEEZE"); }
  TfLiteStatus AddStridedSlice() { return AddBuiltin("STRIDED_SLICE"); }
  TfLiteStatus AddSub() { return AddBuiltin("SUB"); }
  TfLiteStatus AddSum() { return AddBuiltin("SUM"); }
  TfLiteStatus AddSvdf() { return AddBuiltin("SVDF"); }
  TfLiteStatus AddTanh() { return AddBuiltin("TANH"); }
  TfLiteStatus AddTranspose() { return AddBuiltin("TRANSPOSE"); }
  TfLiteStatus AddTransposeConv() { return AddBuiltin("TRANSPOSE_CONV"); }
  TfLiteStatus AddUnidirectionalSequenceLSTM() { return AddBuiltin("UNIDIRECTIONAL_SEQUENCE_LSTM"); }
  TfLiteStatus AddUnpack() { return AddBuiltin("UNPACK"); }
  TfLiteStatus AddVarHandle() { return AddBuiltin("VAR_HANDLE"); }
  TfLiteStatus AddWhile() { return AddBuiltin("WHILE"); }
  TfLiteStatus AddZerosLike() { return AddBuiltin("ZEROS_LIKE"); }

 private:
  TfLiteStatus AddBuiltin(const char* op) {
    for (unsigned int i = 0; i < count_; ++i) {
      if (strcmp(names_[i], op) == 0) return kTfLiteError;  // added twice
    }
    if (count_ >= tOpCount) return kTfLiteError;  // resolver size is too small
    names_[count_++] = op;
    return kTfLiteOk;
  }

  const char* names_[tOpCount];
  unsigned int count_;
};

}  // namespace tflite

#endif  // EFFKERAS_STUB_MICRO_MUTABLE_OP_RESOLVER_H_
