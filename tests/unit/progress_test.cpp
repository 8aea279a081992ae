#include "core/progress.h"

#include <gtest/gtest.h>

using densekv::Progress;

// Under ctest (and when captured here) stderr is not a terminal: the bar must stay silent so logs
// and pipes get no carriage-return noise.
TEST(Progress, SilentWhenStderrIsNotATerminal) {
  ::testing::internal::CaptureStderr();
  {
    Progress p("loading weights", 1000);
    EXPECT_FALSE(p.enabled());
    p.advance(400);
    p.advance(700);  // past the total: clamped, no crash
    p.finish();
    p.finish();  // idempotent
  }
  { Progress q("never finished", 0); }  // destructor finishes; a zero total is allowed
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}
