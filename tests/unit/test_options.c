/* SNAPMALLOC_OPTIONS parsing: defaults, every kind of value, and that each
 * bad item is rejected (one warning) while the rest still apply. */
#include <signal.h>
#include <string.h>

#include "allocator/options.h"
#include "allocator/types.h"
#include "tests/testhelper.h"

int main(void) {
  sm_options_t o;
  CHECK(sm_options_parse(&o, NULL) == 0);
  CHECK(!o.trace && o.depth == 16 && o.signal == SIGUSR2 && o.interval_ms == 0 && o.sample == 0);
  CHECK(o.policy == SM_POLICY_BEST && o.increment == 16 * SM_MiB && o.huge == 32 * SM_MiB && o.leaks && o.at_exit);
  CHECK(strcmp(o.out, "snapmalloc.%e.%p.%n.snap") == 0);

  CHECK(sm_options_parse(&o, "trace=1,depth=32,out=/tmp/x.%p.snap,signal=USR1,interval=5,sample=512K,"
                             "policy=first,increment=8M,leaks=off,at_exit=no,verbose=yes,huge=2M,retain=0") == 0);
  CHECK(o.trace && o.depth == 32 && o.signal == SIGUSR1 && o.interval_ms == 5000);
  CHECK(o.sample == 512 * 1024 && o.policy == SM_POLICY_FIRST && o.increment == 8 * SM_MiB);
  CHECK(!o.leaks && !o.at_exit && o.verbose && o.huge == 2 * SM_MiB && o.retain == 0);
  CHECK(strcmp(o.out, "/tmp/x.%p.snap") == 0);
  CHECK(sm_options_given(&o, "depth") && !sm_options_given(&o, "bogus"));

  CHECK(sm_options_parse(&o, "TRACE=true, policy=next ,signal=0") == 0);
  CHECK(o.trace && o.policy == SM_POLICY_NEXT && o.signal == 0);
  CHECK(sm_options_parse(&o, "sample=1GiB,increment=5M") == 0);
  CHECK(o.sample == SM_GiB && o.increment == 8 * SM_MiB); /* rounded up to whole segments */
  /* T, as docs/options.md writes the ranges: 1T is the top of retain's. */
  CHECK(sm_options_parse(&o, "retain=1T,thp_min=512g") == 0);
  CHECK(o.retain == (size_t)1 << 40 && o.thp_min == (size_t)512 << 30);
  CHECK(sm_options_parse(&o, "retain=2T") == 1);

  /* each bad item counts once; good items around it still apply */
  CHECK(sm_options_parse(&o, "bogus=1,depth=abc,trace=1") == 2);
  CHECK(o.trace && o.depth == 16);
  CHECK(sm_options_parse(&o, "depth=0") == 1 && o.depth == 16);
  CHECK(sm_options_parse(&o, "depth=129") == 1 && o.depth == 16);
  CHECK(sm_options_parse(&o, "depth=128") == 0 && o.depth == 128);
  CHECK(sm_options_parse(&o, "increment=-5") == 1 && o.increment == 16 * SM_MiB);
  CHECK(sm_options_parse(&o, "policy=worst") == 1 && o.policy == SM_POLICY_BEST);
  CHECK(o.unwind == SM_UNWIND_FAST);
  /* run=ID: a bounded token; a bad one (too long, a path) is rejected */
  CHECK(sm_options_parse(&o, "run=ab-12_Z9") == 0 && strcmp(o.run, "ab-12_Z9") == 0);
  CHECK(sm_options_parse(&o, "run=../x") == 1 && o.run[0] == '\0');
  CHECK(sm_options_parse(&o, "run=0123456789012345678901234567890123456789012345678901234567890123") == 1 && !o.run[0]);
  /* sampling turns the exit-time leak analysis off unless it is asked for */
  CHECK(sm_options_parse(&o, "trace=1") == 0 && o.leaks);
  CHECK(sm_options_parse(&o, "trace=1,sample=512K") == 0 && !o.leaks);
  CHECK(sm_options_parse(&o, "trace=1,sample=512K,leaks=1") == 0 && o.leaks);
  CHECK(sm_options_parse(&o, "leaks=1,sample=512K") == 0 && o.leaks);
  CHECK(sm_options_parse(&o, "unwind=libunwind") == 0 && o.unwind == SM_UNWIND_LIBUNWIND);
  CHECK(sm_options_parse(&o, "unwind=CHECK") == 0 && o.unwind == SM_UNWIND_CHECK);
  CHECK(sm_options_parse(&o, "unwind=slow") == 1 && o.unwind == SM_UNWIND_FAST);
  CHECK(sm_options_parse(&o, "signal=KILL") == 1 && o.signal == SIGUSR2);
  CHECK(sm_options_parse(&o, "signal=9") == 1);
  CHECK(sm_options_parse(&o, "trace") == 1);
  CHECK(sm_options_parse(&o, "trace=maybe") == 1 && !o.trace);
  CHECK(sm_options_parse(&o, "sample=99999999999999999999999") == 1);
  CHECK(sm_options_parse(&o, "out=") == 1);
  CHECK(sm_options_parse(&o, ",,,") == 0);
  /* interval: seconds to the millisecond; whole seconds mean what they always did */
  CHECK(sm_options_parse(&o, "interval=0.5") == 0 && o.interval_ms == 500);
  CHECK(sm_options_parse(&o, "interval=1.25") == 0 && o.interval_ms == 1250);
  CHECK(sm_options_parse(&o, "interval=0.001") == 0 && o.interval_ms == 1);
  CHECK(sm_options_parse(&o, "interval=86400") == 0 && o.interval_ms == 86400000);
  CHECK(sm_options_parse(&o, "interval=86400.001") == 1 && o.interval_ms == 0);
  CHECK(sm_options_parse(&o, "interval=0.0005") == 1 && o.interval_ms == 0);
  CHECK(sm_options_parse(&o, "interval=.5") == 1 && sm_options_parse(&o, "interval=1.") == 1);
  CHECK(sm_options_parse(&o, "interval=1e3") == 1 && sm_options_parse(&o, "interval=-1") == 1);
  CHECK(sm_options_parse(&o, "interval=0.5s") == 1 && sm_options_parse(&o, "interval=1,5") == 1);
  return test_summary();
}
