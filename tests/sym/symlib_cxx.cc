// C++ part of the test library: a namespaced static member function, so the
// symbolizer has a mangled name to demangle.
#include <cstddef>

extern "C" void *symlib_capture(std::size_t n);

namespace smsym {
struct Box {
  static void *make(std::size_t n);
};

__attribute__((noinline)) void *Box::make(std::size_t n) {
  void *p = symlib_capture(n); /* LINE:cxx_call */
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}
}  // namespace smsym

extern "C" void *symlib_cxx_alloc(std::size_t n) {
  void *p = smsym::Box::make(n);
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}
