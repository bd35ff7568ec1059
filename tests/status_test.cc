#include "cgcn/status.h"

#include <gtest/gtest.h>

namespace cgcn {
namespace {

Result<int> Half(int x) {
  if (x % 2) return Status::InvalidArgument(std::to_string(x) + " is odd");
  return x / 2;
}

Status UseHalf(int x, int* out) {
  CGCN_ASSIGN_OR_RETURN(*out, Half(x));
  CGCN_RETURN_IF_ERROR(Status::Ok());
  return Status::Ok();
}

TEST(Status, OkAndErrors) {
  EXPECT_TRUE(Status::Ok().ok());
  const Status s = Status::Corruption("f.cgs: bad");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_EQ(s.ToString(), "corruption: f.cgs: bad");
  EXPECT_EQ(s.WithContext("loading").message(), "loading: f.cgs: bad");
}

TEST(Status, ResultAndMacros) {
  int v = 0;
  EXPECT_TRUE(UseHalf(8, &v).ok());
  EXPECT_EQ(v, 4);
  const Status s = UseHalf(7, &v);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "7 is odd");
}

}  // namespace
}  // namespace cgcn
