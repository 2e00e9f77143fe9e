// Everything of Needle's debugging tools: #include <needle/debug/debug.h>.
#pragma once

#include "needle/debug/anomaly.h"
#include "needle/debug/call_site.h"
#include "needle/debug/check_against_ref.h"
#include "needle/debug/graph_viz.h"
#include "needle/debug/memory.h"
#include "needle/debug/trace.h"
