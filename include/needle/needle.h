// Everything of Needle's C++ API: #include <needle/needle.h>.
#pragma once

#include "needle/autograd/engine.h"
#include "needle/autograd/grad_mode.h"
#include "needle/autograd/op.h"
#include "needle/autograd/tensor.h"
#include "needle/backend/backend.h"
#include "needle/core/array_ops.h"
#include "needle/core/device.h"
#include "needle/core/dtype.h"
#include "needle/core/error.h"
#include "needle/core/ndarray.h"
#include "needle/core/random.h"
#include "needle/core/scalar.h"
#include "needle/core/shape.h"
#include "needle/core/storage.h"
#include "needle/ops/ops.h"
