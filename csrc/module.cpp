// pybind11 bindings for the native backend (filled in by the engine issue).
#include <pybind11/pybind11.h>

#include "schema.h"

namespace py = pybind11;

PYBIND11_MODULE(_native, mod) {
    mod.doc() = "pyengine native cost model (C++, OpenMP)";
    mod.attr("N_PLAN") = pyengine::N_PLAN;
    mod.attr("N_OUTPUTS") = pyengine::N_OUTPUTS;
}
