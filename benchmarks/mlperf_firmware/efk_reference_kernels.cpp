// TFLM's plain reference kernels for the int8 ops of the MLPerf Tiny models, for the
// Arduino_TensorFlowLite library, which ships only the CMSIS-NN variants of CONV_2D,
// DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE_POOL_2D / MAX_POOL_2D, ADD and SOFTMAX.
//
// benchmarks/mlperf_tiny.py copies this file into a generated sketch to measure the
// reference kernels: the sketch's object defines the Register_X() functions that
// MicroMutableOpResolver::AddX() calls, so the linker never pulls the library archive's
// CMSIS-NN member for them (a member pulled for any other symbol would be a duplicate
// definition: a link error, never a silent mix; the benchmark also checks the ELF for
// CMSIS-NN kernel symbols).
//
// Each Eval is the int8 path of the library's reference kernel of the same TFLM sync
// (tensorflow/tflite-micro 2023-02-27): Init/Prepare are the library's *_common.cpp ones,
// the arithmetic is tensorflow/lite/kernels/internal/reference(/integer_ops). Other types
// are refused (the MLPerf models are full int8). efk_reference_ops.h (written beside it
// by the benchmark) defines EFK_REF_<OP> for the model's ops only, so the sketch links
// only the library's *_common.cpp objects the build selected for those ops.
#include "efk_reference_ops.h"
#include "tensorflow/lite/c/builtin_op_data.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/add.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/conv.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/depthwise_conv.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/fully_connected.h"
#include "tensorflow/lite/kernels/internal/reference/process_broadcast_shapes.h"
#include "tensorflow/lite/kernels/internal/reference/softmax.h"
#include "tensorflow/lite/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/add.h"
#include "tensorflow/lite/micro/kernels/conv.h"
#include "tensorflow/lite/micro/kernels/depthwise_conv.h"
#include "tensorflow/lite/micro/kernels/fully_connected.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/pooling.h"
#include "tensorflow/lite/micro/kernels/softmax.h"
#include "tensorflow/lite/micro/micro_log.h"

namespace tflite {
namespace {

TfLiteStatus NotInt8(const char* op, TfLiteType type) {
  MicroPrintf("efk reference %s: only int8 is built here, got %s", op, TfLiteTypeGetName(type));
  return kTfLiteError;
}

#if defined(EFK_REF_CONV_2D) || defined(EFK_REF_DEPTHWISE_CONV_2D)
// ---- CONV_2D ----
void* RefConvInit(TfLiteContext* context, const char*, size_t) {
  return context->AllocatePersistentBuffer(context, sizeof(OpDataConv));
}

#if defined(EFK_REF_CONV_2D)
TfLiteStatus RefConvEval(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* input = micro::GetEvalInput(context, node, kConvInputTensor);
  const TfLiteEvalTensor* filter = micro::GetEvalInput(context, node, kConvWeightsTensor);
  const TfLiteEvalTensor* bias =
      NumInputs(node) == 3 ? micro::GetEvalInput(context, node, kConvBiasTensor) : nullptr;
  TfLiteEvalTensor* output = micro::GetEvalOutput(context, node, kConvOutputTensor);
  const auto& params = *static_cast<const TfLiteConvParams*>(node->builtin_data);
  const auto& data = *static_cast<const OpDataConv*>(node->user_data);
  if (input->type != kTfLiteInt8 || filter->type != kTfLiteInt8) {
    return NotInt8("CONV_2D", input->type);
  }
  reference_integer_ops::ConvPerChannel(
      ConvParamsQuantized(params, data), data.per_channel_output_multiplier,
      data.per_channel_output_shift, micro::GetTensorShape(input),
      micro::GetTensorData<int8_t>(input), micro::GetTensorShape(filter),
      micro::GetTensorData<int8_t>(filter), micro::GetTensorShape(bias),
      micro::GetOptionalTensorData<int32_t>(bias), micro::GetTensorShape(output),
      micro::GetTensorData<int8_t>(output));
  return kTfLiteOk;
}

#endif

#endif

#if defined(EFK_REF_DEPTHWISE_CONV_2D)
// ---- DEPTHWISE_CONV_2D ----
TfLiteStatus RefDepthwiseEval(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* input = micro::GetEvalInput(context, node, kDepthwiseConvInputTensor);
  const TfLiteEvalTensor* filter =
      micro::GetEvalInput(context, node, kDepthwiseConvWeightsTensor);
  const TfLiteEvalTensor* bias =
      NumInputs(node) == 3 ? micro::GetEvalInput(context, node, kDepthwiseConvBiasTensor)
                           : nullptr;
  TfLiteEvalTensor* output = micro::GetEvalOutput(context, node, kDepthwiseConvOutputTensor);
  const auto& params = *static_cast<const TfLiteDepthwiseConvParams*>(node->builtin_data);
  const auto& data = *static_cast<const OpDataConv*>(node->user_data);
  if (input->type != kTfLiteInt8 || filter->type != kTfLiteInt8) {
    return NotInt8("DEPTHWISE_CONV_2D", input->type);
  }
  reference_integer_ops::DepthwiseConvPerChannel(
      DepthwiseConvParamsQuantized(params, data), data.per_channel_output_multiplier,
      data.per_channel_output_shift, micro::GetTensorShape(input),
      micro::GetTensorData<int8_t>(input), micro::GetTensorShape(filter),
      micro::GetTensorData<int8_t>(filter), micro::GetTensorShape(bias),
      micro::GetOptionalTensorData<int32_t>(bias), micro::GetTensorShape(output),
      micro::GetTensorData<int8_t>(output));
  return kTfLiteOk;
}

#endif

#if defined(EFK_REF_FULLY_CONNECTED)
// ---- FULLY_CONNECTED ----
void* RefFcInit(TfLiteContext* context, const char*, size_t) {
  return context->AllocatePersistentBuffer(context, sizeof(OpDataFullyConnected));
}

TfLiteStatus RefFcPrepare(TfLiteContext* context, TfLiteNode* node) {
  MicroContext* micro_context = GetMicroContext(context);
  auto* data = static_cast<OpDataFullyConnected*>(node->user_data);
  const auto* params = static_cast<const TfLiteFullyConnectedParams*>(node->builtin_data);
  TfLiteTensor* input = micro_context->AllocateTempInputTensor(node, kFullyConnectedInputTensor);
  TF_LITE_ENSURE(context, input != nullptr);
  TfLiteTensor* filter =
      micro_context->AllocateTempInputTensor(node, kFullyConnectedWeightsTensor);
  TF_LITE_ENSURE(context, filter != nullptr);
  TfLiteTensor* bias = micro_context->AllocateTempInputTensor(node, kFullyConnectedBiasTensor);
  TfLiteTensor* output =
      micro_context->AllocateTempOutputTensor(node, kFullyConnectedOutputTensor);
  TF_LITE_ENSURE(context, output != nullptr);
  TF_LITE_ENSURE_TYPES_EQ(context, input->type, output->type);
  TF_LITE_ENSURE_OK(context, CalculateOpDataFullyConnected(context, params->activation,
                                                           input->type, input, filter, bias,
                                                           output, data));
  micro_context->DeallocateTempTfLiteTensor(input);
  micro_context->DeallocateTempTfLiteTensor(filter);
  if (bias != nullptr) micro_context->DeallocateTempTfLiteTensor(bias);
  micro_context->DeallocateTempTfLiteTensor(output);
  return kTfLiteOk;
}

TfLiteStatus RefFcEval(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* input = micro::GetEvalInput(context, node, kFullyConnectedInputTensor);
  const TfLiteEvalTensor* filter =
      micro::GetEvalInput(context, node, kFullyConnectedWeightsTensor);
  const TfLiteEvalTensor* bias = micro::GetEvalInput(context, node, kFullyConnectedBiasTensor);
  TfLiteEvalTensor* output = micro::GetEvalOutput(context, node, kFullyConnectedOutputTensor);
  const auto& data = *static_cast<const OpDataFullyConnected*>(node->user_data);
  if (input->type != kTfLiteInt8 || filter->type != kTfLiteInt8) {
    return NotInt8("FULLY_CONNECTED", input->type);
  }
  reference_integer_ops::FullyConnected(
      FullyConnectedParamsQuantized(data), micro::GetTensorShape(input),
      micro::GetTensorData<int8_t>(input), micro::GetTensorShape(filter),
      micro::GetTensorData<int8_t>(filter), micro::GetTensorShape(bias),
      micro::GetOptionalTensorData<int32_t>(bias), micro::GetTensorShape(output),
      micro::GetTensorData<int8_t>(output));
  return kTfLiteOk;
}

#endif

#if defined(EFK_REF_AVERAGE_POOL_2D) || defined(EFK_REF_MAX_POOL_2D)
// ---- AVERAGE_POOL_2D, MAX_POOL_2D ----
void* RefPoolInit(TfLiteContext* context, const char*, size_t) {
  return context->AllocatePersistentBuffer(context, sizeof(OpDataPooling));
}

#endif

#if defined(EFK_REF_AVERAGE_POOL_2D)
TfLiteStatus RefAvgPoolEval(TfLiteContext* context, TfLiteNode* node) {
  const auto* params = static_cast<const TfLitePoolParams*>(node->builtin_data);
  const auto* data = static_cast<const OpDataPooling*>(node->user_data);
  const TfLiteEvalTensor* input = micro::GetEvalInput(context, node, kPoolingInputTensor);
  TfLiteEvalTensor* output = micro::GetEvalOutput(context, node, kPoolingOutputTensor);
  if (input->type != kTfLiteInt8) return NotInt8("AVERAGE_POOL_2D", input->type);
  AveragePoolingEvalQuantized<int8_t>(context, node, params, data, input, output);
  return kTfLiteOk;
}

#endif

#if defined(EFK_REF_MAX_POOL_2D)
TfLiteStatus RefMaxPoolEval(TfLiteContext* context, TfLiteNode* node) {
  const auto* params = static_cast<const TfLitePoolParams*>(node->builtin_data);
  const auto* data = static_cast<const OpDataPooling*>(node->user_data);
  const TfLiteEvalTensor* input = micro::GetEvalInput(context, node, kPoolingInputTensor);
  TfLiteEvalTensor* output = micro::GetEvalOutput(context, node, kPoolingOutputTensor);
  if (input->type != kTfLiteInt8) return NotInt8("MAX_POOL_2D", input->type);
  MaxPoolingEvalQuantized<int8_t>(context, node, const_cast<TfLitePoolParams*>(params), data,
                                  input, output);
  return kTfLiteOk;
}

#endif

#if defined(EFK_REF_ADD)
// ---- ADD ----
void* RefAddInit(TfLiteContext* context, const char*, size_t) {
  return context->AllocatePersistentBuffer(context, sizeof(OpDataAdd));
}

TfLiteStatus RefAddEval(TfLiteContext* context, TfLiteNode* node) {
  const auto* data = static_cast<const OpDataAdd*>(node->user_data);
  const TfLiteEvalTensor* input1 = micro::GetEvalInput(context, node, kAddInputTensor1);
  const TfLiteEvalTensor* input2 = micro::GetEvalInput(context, node, kAddInputTensor2);
  TfLiteEvalTensor* output = micro::GetEvalOutput(context, node, kAddOutputTensor);
  if (output->type != kTfLiteInt8) return NotInt8("ADD", output->type);
  ArithmeticParams op_params;
  op_params.left_shift = data->left_shift;
  op_params.input1_offset = data->input1_offset;
  op_params.input1_multiplier = data->input1_multiplier;
  op_params.input1_shift = data->input1_shift;
  op_params.input2_offset = data->input2_offset;
  op_params.input2_multiplier = data->input2_multiplier;
  op_params.input2_shift = data->input2_shift;
  op_params.output_offset = data->output_offset;
  op_params.output_multiplier = data->output_multiplier;
  op_params.output_shift = data->output_shift;
  SetActivationParams(data->output_activation_min, data->output_activation_max, &op_params);
  const bool broadcast = reference_ops::ProcessBroadcastShapes(
      micro::GetTensorShape(input1), micro::GetTensorShape(input2), &op_params);
  if (broadcast) {
    reference_integer_ops::BroadcastAdd4DSlow(
        op_params, micro::GetTensorShape(input1), micro::GetTensorData<int8_t>(input1),
        micro::GetTensorShape(input2), micro::GetTensorData<int8_t>(input2),
        micro::GetTensorShape(output), micro::GetTensorData<int8_t>(output));
  } else {
    reference_integer_ops::Add(
        op_params, micro::GetTensorShape(input1), micro::GetTensorData<int8_t>(input1),
        micro::GetTensorShape(input2), micro::GetTensorData<int8_t>(input2),
        micro::GetTensorShape(output), micro::GetTensorData<int8_t>(output));
  }
  return kTfLiteOk;
}

#endif

#if defined(EFK_REF_SOFTMAX)
// ---- SOFTMAX ----
TfLiteStatus RefSoftmaxEval(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* input = micro::GetEvalInput(context, node, 0);
  TfLiteEvalTensor* output = micro::GetEvalOutput(context, node, 0);
  const SoftmaxParams& op_data = *static_cast<const SoftmaxParams*>(node->user_data);
  if (input->type != kTfLiteInt8 || output->type != kTfLiteInt8) {
    return NotInt8("SOFTMAX", input->type);
  }
  reference_ops::Softmax(op_data, micro::GetTensorShape(input),
                         micro::GetTensorData<int8_t>(input), micro::GetTensorShape(output),
                         micro::GetTensorData<int8_t>(output));
  return kTfLiteOk;
}

#endif

}  // namespace

#if defined(EFK_REF_CONV_2D)
TfLiteRegistration Register_CONV_2D() {
  return micro::RegisterOp(RefConvInit, ConvPrepare, RefConvEval);
}
#endif
#if defined(EFK_REF_DEPTHWISE_CONV_2D)
TfLiteRegistration Register_DEPTHWISE_CONV_2D() {
  return micro::RegisterOp(RefConvInit, DepthwiseConvPrepare, RefDepthwiseEval);
}
#endif
#if defined(EFK_REF_FULLY_CONNECTED)
TfLiteRegistration Register_FULLY_CONNECTED() {
  return micro::RegisterOp(RefFcInit, RefFcPrepare, RefFcEval);
}
#endif
#if defined(EFK_REF_AVERAGE_POOL_2D)
TfLiteRegistration Register_AVERAGE_POOL_2D() {
  return micro::RegisterOp(RefPoolInit, PoolingPrepare, RefAvgPoolEval);
}
#endif
#if defined(EFK_REF_MAX_POOL_2D)
TfLiteRegistration Register_MAX_POOL_2D() {
  return micro::RegisterOp(RefPoolInit, PoolingPrepare, RefMaxPoolEval);
}
#endif
#if defined(EFK_REF_ADD)
TfLiteRegistration Register_ADD() {
  return micro::RegisterOp(RefAddInit, AddPrepare, RefAddEval);
}
#endif
#if defined(EFK_REF_SOFTMAX)
TfLiteRegistration Register_SOFTMAX() {
  return micro::RegisterOp(SoftmaxInit, SoftmaxPrepare, RefSoftmaxEval);
}
#endif

}  // namespace tflite
