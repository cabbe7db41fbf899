// SPDX-License-Identifier: GPL-2.0
/*
 * kdf's example KUnit suite in an out-of-tree module: one case that passes,
 * one that skips, and one that fails when `fail=1` is given. Loading the
 * module runs the suite (with CONFIG_KUNIT); kdf counts the cases and ends a
 * run with a failing one with 121.
 *
 *   make KDIR=~/src/linux/.kdf-build
 *   kdf run --kernel ~/src/linux/.kdf-build --module kdf_kunit_example.ko -- true
 *   kdf run --kernel ~/src/linux/.kdf-build --module 'kdf_kunit_example.ko fail=1' -- true
 *
 * kdf's tests load it too (kdf/tests/modules.rs).
 */

#include <kunit/test.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

static bool fail;
module_param(fail, bool, 0444);
MODULE_PARM_DESC(fail, "make kdf_kunit_example_fails fail, to see a KUnit failure fail a kdf run (default: no)");

static void kdf_kunit_example_passes(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, 1 + 1, 2);
}

static void kdf_kunit_example_skips(struct kunit *test)
{
	kunit_skip(test, "skipped on purpose");
}

static void kdf_kunit_example_fails(struct kunit *test)
{
	KUNIT_EXPECT_EQ_MSG(test, 1 + 1, fail ? 3 : 2, "fail=1 was given");
}

static struct kunit_case kdf_kunit_example_cases[] = {
	KUNIT_CASE(kdf_kunit_example_passes),
	KUNIT_CASE(kdf_kunit_example_skips),
	KUNIT_CASE(kdf_kunit_example_fails),
	{}
};

static struct kunit_suite kdf_kunit_example_suite = {
	.name = "kdf_kunit_example",
	.test_cases = kdf_kunit_example_cases,
};
kunit_test_suite(kdf_kunit_example_suite);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kdf");
MODULE_DESCRIPTION("kdf's example KUnit suite in an out-of-tree module");
