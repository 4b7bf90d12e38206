// Known allocation sites for the golden tests of `snapmalloc top`:
// C++ new and new[], strdup, a std::vector, four threads, and a dlopen'd
// plugin. Every block is still live at exit, so the final snapshot holds
// exactly the counts below (plus the C and C++ runtimes' own buffers).
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

struct Node {
  Node *next;
  long payload[5];
};

static Node *make_list(int n) {
  Node *head = nullptr;
  for (int i = 0; i < n; i++) {
    Node *node = new Node(); // 3000 x 48 B
    node->next = head;
    head = node;
  }
  return head;
}

static char *names[2000];
static void make_names() {
  for (int i = 0; i < 2000; i++) {
    char buf[32];
    snprintf(buf, sizeof buf, "name-%04d", i);
    names[i] = strdup(buf); // 2000 x 10 B
  }
}

static double *arrays[100];
static void make_arrays() {
  for (int i = 0; i < 100; i++) arrays[i] = new double[64]; // 100 x 512 B
}

static std::vector<int> *numbers;
static void fill_vector() {
  numbers = new std::vector<int>(); // 1 x 24 B
  numbers->reserve(10000);          // 1 x 40000 B
  for (int i = 0; i < 10000; i++) numbers->push_back(i);
}

static void *thread_blocks[4][250];
static void *worker(void *arg) {
  void **out = static_cast<void **>(arg);
  for (int i = 0; i < 250; i++) out[i] = malloc(100); // 1000 x 100 B over 4 threads
  return nullptr;
}

int main(int argc, char **argv) {
  Node *list = make_list(3000);
  make_names();
  make_arrays();
  fill_vector();
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], nullptr, worker, thread_blocks[i]);
  for (int i = 0; i < 4; i++) pthread_join(t[i], nullptr);
  if (argc > 1) {
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
      fprintf(stderr, "sites: %s\n", dlerror());
      return 1;
    }
    void *(*make)(int) = reinterpret_cast<void *(*)(int)>(dlsym(h, "plugin_make"));
    make(7); // the plugin allocates 7 x 333 B
  }
  printf("list=%p names=%s vector=%zu\n", static_cast<void *>(list), names[1999], numbers->size());
  return 0;
}
