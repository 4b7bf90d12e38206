#!/bin/sh
# gcc and g++ under the preload (cc1/cc1plus, as and ld all preloaded):
# compile a generated C program and a C++ program with -O2, run them, and
# compare their output, the object files and executables (byte for byte:
# the toolchain is deterministic) and nm listings with a run without the
# preload. Usage: gcc.sh PATH-TO-libsnapmalloc.so
. "$(dirname "$0")/common.sh"
need gcc g++ nm cksum awk

export LC_ALL=C
# A C file big enough to make cc1 work: 300 functions with loops, switch
# statements and string tables, plus a main that calls them all.
awk 'BEGIN {
  print "#include <stdio.h>"
  print "#include <stdlib.h>"
  print "#include <string.h>"
  for (f = 0; f < 300; f++) {
    printf "static const char *names%d[] = {", f
    for (k = 0; k < 8; k++) printf "\"n%d_%d\", ", f, k
    print "};"
    printf "unsigned long fn%d(unsigned long x) {\n", f
    print "  unsigned long acc = x;"
    printf "  for (int i = 0; i < %d; i++) {\n", 10 + f % 13
    print "    switch ((acc + i) % 5) {"
    printf "    case 0: acc = acc * %d + i; break;\n", 3 + f % 7
    printf "    case 1: acc ^= acc >> %d; break;\n", 1 + f % 9
    printf "    case 2: acc += strlen(names%d[i %% 8]); break;\n", f
    printf "    case 3: acc = (acc << 3) - acc + %d; break;\n", f
    print "    default: acc = ~acc + 7;"
    print "    }"
    print "  }"
    print "  return acc;"
    print "}"
  }
  print "int main(void) {"
  print "  unsigned long s = 1;"
  for (f = 0; f < 300; f++) printf "  s = fn%d(s) ^ (s << 1);\n", f
  print "  char *buf = malloc(1 << 20);"
  print "  for (int i = 0; i < (1 << 20); i++) buf[i] = (char)(s >> (i % 50));"
  print "  unsigned long t = 0;"
  print "  for (int i = 0; i < (1 << 20); i++) t = t * 31 + (unsigned char)buf[i];"
  print "  free(buf);"
  print "  printf(\"%lu %lu\\n\", s, t);"
  print "  return 0;"
  print "}"
}' >"$tmp/prog.c"

cat >"$tmp/prog.cpp" <<'CPP'
#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

template <int N> struct Fib { static constexpr unsigned long value = Fib<N - 1>::value + Fib<N - 2>::value; };
template <> struct Fib<1> { static constexpr unsigned long value = 1; };
template <> struct Fib<0> { static constexpr unsigned long value = 0; };

struct Shape {
  virtual ~Shape() = default;
  virtual double area() const = 0;
};
struct Rect : Shape {
  double w, h;
  Rect(double a, double b) : w(a), h(b) {}
  double area() const override { return w * h; }
};
struct Tri : Shape {
  double b, h;
  Tri(double x, double y) : b(x), h(y) {}
  double area() const override { return b * h / 2; }
};

int main() {
  std::vector<std::unique_ptr<Shape>> shapes;
  for (int i = 0; i < 100000; i++) {
    if (i % 2) shapes.push_back(std::make_unique<Rect>(i % 10, i % 7));
    else shapes.push_back(std::make_unique<Tri>(i % 9, i % 5));
  }
  double total = 0;
  for (auto &s : shapes) total += s->area();
  std::map<std::string, int> words;
  std::unordered_map<int, std::set<int>> groups;
  for (int i = 0; i < 50000; i++) {
    std::ostringstream os;
    os << "w" << (i * 7919) % 1000;
    words[os.str()]++;
    groups[i % 97].insert(i % 1013);
  }
  std::vector<int> v(200000);
  std::iota(v.begin(), v.end(), 0);
  std::sort(v.begin(), v.end(), [](int a, int b) { return (a * 2654435761u) < (b * 2654435761u); });
  unsigned long mix = 0;
  for (int x : v) mix = mix * 1000003 + static_cast<unsigned long>(x);
  std::size_t gsum = 0;
  for (auto &g : groups) gsum += g.second.size();
  std::cout << Fib<60>::value << " " << total << " " << words.size() << " " << words["w500"]
            << " " << gsum << " " << mix << "\n";
}
CPP

workload() {
  cp "$tmp/prog.c" "$tmp/prog.cpp" .
  gcc -O2 -c prog.c -o prog.o
  gcc -O2 prog.o -o prog
  ./prog
  cksum <prog.o
  nm prog.o | cksum
  size prog.o | tail -n 1 | awk '{ print $1, $2, $3 }'
  g++ -O2 -std=c++17 prog.cpp -o progxx
  ./progxx
  nm -C progxx | awk '{ print $NF }' | sort | cksum
  # Whole executables: same build-id and bytes with or without the preload.
  cksum <prog
  cksum <progxx
}

compare_runs gcc
