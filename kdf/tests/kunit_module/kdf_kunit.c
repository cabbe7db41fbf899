// SPDX-License-Identifier: GPL-2.0
/*
 * A KUnit suite with one passing, one skipped and one failing case: loaded
 * with `kdf run --module`, the run must end with 121 and count 3 tests.
 */
#include <kunit/test.h>
#include <linux/module.h>

static void kdf_kunit_passes(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, 1 + 1, 2);
}

static void kdf_kunit_skips(struct kunit *test)
{
	kunit_skip(test, "skipped on purpose");
}

static void kdf_kunit_fails(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, 1 + 1, 3);
}

static struct kunit_case kdf_kunit_cases[] = {
	KUNIT_CASE(kdf_kunit_passes),
	KUNIT_CASE(kdf_kunit_skips),
	KUNIT_CASE(kdf_kunit_fails),
	{}
};

static struct kunit_suite kdf_kunit_suite = {
	.name = "kdf_kunit",
	.test_cases = kdf_kunit_cases,
};
kunit_test_suite(kdf_kunit_suite);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kdf test module: a KUnit suite with a failing case");
