// C++ allocation through the preloaded malloc: new/delete, new[]/delete[]
// (with array cookies), over-aligned new (alignas struct and
// std::align_val_t), nothrow new, sized delete, the new_handler on failure,
// and container churn (vector, string, map, unordered_map) with results
// checked against values computed independently.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include <malloc.h>

#include "smtest.h"

static bool aligned(const void *p, std::size_t a) {
  return (reinterpret_cast<std::uintptr_t>(p) & (a - 1)) == 0;
}

struct alignas(256) Big256 {
  unsigned char bytes[300];
};

struct alignas(4096) Page {
  unsigned char bytes[100];
};

static int live_counted = 0;
struct Counted {
  int v;
  std::string s;
  Counted() : v(7), s(40, 'x') { live_counted++; }
  ~Counted() { live_counted--; }
};

static void test_new_delete() {
  std::fprintf(stderr, "-- new/delete\n");
  for (int round = 0; round < 200; round++) {
    int *p = new int(round);
    CHECK(*p == round);
    delete p;
    std::size_t n = static_cast<std::size_t>(round) * 37 + 1;
    double *a = new double[n];
    for (std::size_t i = 0; i < n; i++) a[i] = static_cast<double>(i) * 0.5;
    double sum = 0;
    for (std::size_t i = 0; i < n; i++) sum += a[i];
    CHECK(sum == 0.25 * static_cast<double>(n) * static_cast<double>(n - 1));
    delete[] a;
  }
  // Arrays of objects with destructors carry a cookie before the elements.
  for (int n = 1; n < 300; n += 17) {
    Counted *c = new Counted[static_cast<std::size_t>(n)];
    CHECK(live_counted == n);
    CHECK(c[n - 1].v == 7 && c[n - 1].s.size() == 40);
    delete[] c;
    CHECK(live_counted == 0);
  }
  // Large and huge arrays.
  for (std::size_t n : {std::size_t(100000), std::size_t(3) << 20, std::size_t(40) << 20}) {
    char *b = new char[n];
    std::memset(b, 0x5A, n);
    CHECK(b[0] == 0x5A && b[n - 1] == 0x5A);
    delete[] b;
  }
}

static void test_aligned_new() {
  std::fprintf(stderr, "-- aligned new\n");
  std::vector<Big256 *> v;
  for (int i = 0; i < 500; i++) {
    Big256 *b = new Big256;
    CHECK(aligned(b, 256));
    std::memset(b->bytes, i & 0xFF, sizeof b->bytes);
    v.push_back(b);
  }
  for (std::size_t i = 0; i < v.size(); i++) {
    CHECK(v[i]->bytes[299] == static_cast<unsigned char>(i & 0xFF));
    delete v[i];
  }
  Big256 *arr = new Big256[33];
  CHECK(aligned(arr, 256));
  std::memset(arr, 1, sizeof(Big256) * 33);
  delete[] arr;
  Page *pg = new Page;
  CHECK(aligned(pg, 4096));
  delete pg;
  for (std::size_t a = 16; a <= (std::size_t(1) << 22); a *= 2) {
    for (std::size_t n : {std::size_t(1), a / 2 + 1, a, a * 3 + 5}) {
      void *p = ::operator new(n, std::align_val_t(a));
      CHECK(aligned(p, a));
      std::memset(p, 0x77, n);
      if (n % 2)
        ::operator delete(p, std::align_val_t(a));
      else
        ::operator delete(p, n, std::align_val_t(a));
      void *q = ::operator new[](n, std::align_val_t(a));
      CHECK(aligned(q, a));
      std::memset(q, 0x78, n);
      ::operator delete[](q, std::align_val_t(a));
      void *r = ::operator new(n, std::align_val_t(a), std::nothrow);
      CHECK(r != nullptr && aligned(r, a));
      ::operator delete(r, std::align_val_t(a), std::nothrow);
    }
  }
}

static void test_nothrow_and_failure() {
  std::fprintf(stderr, "-- nothrow new, bad_alloc, new_handler\n");
  volatile std::size_t huge = std::size_t(1) << 62;
  void *p = ::operator new(huge, std::nothrow);
  CHECK(p == nullptr);
  char *c = new (std::nothrow) char[64];
  CHECK(c != nullptr);
  std::memset(c, 1, 64);
  delete[] c;
  bool threw = false;
  try {
    void *q = ::operator new(huge);
    ::operator delete(q);
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw);
  threw = false;
  try {
    std::size_t n = huge;
    char *big = new char[n];
    delete[] big;
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw);
  // The new_handler runs when malloc fails; uninstalling it makes new throw.
  static int handler_calls;
  handler_calls = 0;
  std::set_new_handler([] {
    handler_calls++;
    std::set_new_handler(nullptr);
  });
  threw = false;
  try {
    void *q = ::operator new(huge);
    ::operator delete(q);
  } catch (const std::bad_alloc &) {
    threw = true;
  }
  CHECK(threw);
  CHECK_MSG(handler_calls == 1, "new_handler called %d times", handler_calls);
}

static void test_sized_delete() {
  std::fprintf(stderr, "-- sized delete\n");
  for (std::size_t n = 1; n < 300000; n = n * 3 / 2 + 1) {
    void *p = ::operator new(n);
    std::memset(p, 3, n);
    ::operator delete(p, n);
    void *q = ::operator new[](n);
    std::memset(q, 4, n);
    ::operator delete[](q, n);
  }
  struct S {
    long a[5];
  };
  for (int i = 0; i < 1000; i++) {
    S *s = new S();
    s->a[4] = i;
    delete s;  // sized delete with -fsized-deallocation (default in C++14+)
  }
}

static std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ull;
  x ^= x >> 27;
  return x;
}

static void test_containers() {
  std::fprintf(stderr, "-- containers\n");
  // vector growth and shrink.
  std::vector<std::uint64_t> v;
  for (std::uint64_t i = 0; i < 2000000; i++) v.push_back(mix(i));
  std::uint64_t x = 0;
  for (std::uint64_t i = 0; i < v.size(); i++) x ^= v[i] + i;
  std::uint64_t y = 0;
  for (std::uint64_t i = 0; i < 2000000; i++) y ^= mix(i) + i;
  CHECK(x == y);
  v.resize(10);
  v.shrink_to_fit();
  CHECK(v.capacity() == 10 && v[9] == mix(9));

  // strings of many lengths, concatenated and compared.
  std::vector<std::string> strs;
  std::size_t total = 0;
  for (int i = 0; i < 20000; i++) {
    std::string s(static_cast<std::size_t>(mix(static_cast<std::uint64_t>(i)) % 200),
                  static_cast<char>('a' + i % 26));
    s += std::to_string(i);
    total += s.size();
    strs.push_back(std::move(s));
  }
  std::size_t check = 0;
  for (int i = 0; i < 20000; i++) {
    const std::string &s = strs[static_cast<std::size_t>(i)];
    check += s.size();
    std::string tail = std::to_string(i);
    CHECK(s.compare(s.size() - tail.size(), tail.size(), tail) == 0);
  }
  CHECK(check == total);
  strs.clear();
  strs.shrink_to_fit();

  // map and unordered_map churn with erase.
  std::map<std::uint64_t, std::string> m;
  std::unordered_map<std::uint64_t, std::vector<int>> um;
  for (std::uint64_t i = 0; i < 100000; i++) {
    std::uint64_t k = mix(i) % 50000;
    m[k] = std::to_string(i);
    um[k].push_back(static_cast<int>(i));
    if (i % 3 == 0) {
      m.erase(mix(i + 7) % 50000);
      um.erase(mix(i + 7) % 50000);
    }
  }
  // Recompute the expected final state with plain arrays.
  std::vector<long> last(50000, -1);
  std::vector<int> count(50000, 0);
  for (std::uint64_t i = 0; i < 100000; i++) {
    std::uint64_t k = mix(i) % 50000;
    last[k] = static_cast<long>(i);
    count[k]++;
    if (i % 3 == 0) {
      std::uint64_t e = mix(i + 7) % 50000;
      last[e] = -1;
      count[e] = 0;
    }
  }
  std::size_t present = 0;
  bool ok = true;
  for (std::uint64_t k = 0; k < 50000; k++) {
    if (last[k] < 0) {
      ok = ok && m.count(k) == 0 && um.count(k) == 0;
      continue;
    }
    present++;
    auto it = m.find(k);
    ok = ok && it != m.end() && it->second == std::to_string(last[k]);
    auto jt = um.find(k);
    ok = ok && jt != um.end() && jt->second.size() == static_cast<std::size_t>(count[k]) &&
         jt->second.back() == last[k];
  }
  CHECK(ok);
  CHECK(m.size() == present && um.size() == present);

  // shared_ptr / unique_ptr churn.
  std::vector<std::shared_ptr<std::string>> sp;
  for (int i = 0; i < 50000; i++) {
    sp.push_back(std::make_shared<std::string>(100, 'q'));
    if (i % 2) sp[static_cast<std::size_t>(i / 2)].reset();
  }
  std::size_t alive = 0;
  for (auto &s : sp) alive += s ? 1 : 0;
  CHECK(alive == 25000);
  std::unique_ptr<char[]> u(new char[1 << 20]);
  u[(1 << 20) - 1] = 9;
  CHECK(u[(1 << 20) - 1] == 9);
}

int main() {
  sm_check_preload();
  test_new_delete();
  test_aligned_new();
  test_nothrow_and_failure();
  test_sized_delete();
  test_containers();
  return test_summary();
}
