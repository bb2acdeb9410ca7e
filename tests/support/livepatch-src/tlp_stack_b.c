// SPDX-License-Identifier: GPL-2.0
/*
 * tlp_stack_b: a non-replace livepatch of version_proc_show() (fs/proc/
 * version.c, what /proc/version prints), a DIFFERENT function than
 * tlp_stack_a's cmdline_proc_show(), so a test can see both patches of a
 * stack at once: /proc/cmdline ends in "tlp_marker=stack_a" and
 * /proc/version in "tlp_marker=stack_b". Both handlers are address-taken
 * (proc_create_single), so they exist out of line with their own names.
 */
#include <linux/kernel.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/seq_file.h>

#include "tlp_common.h"

static char tlp_banner[TLP_TEXT_MAX];

static int livepatch_version_proc_show(struct seq_file *m, void *v)
{
	seq_printf(m, "%s tlp_marker=stack_b\n", tlp_banner);
	return 0;
}

static struct klp_func tlp_funcs[] = {
	{
		.old_name = "version_proc_show",
		.new_func = livepatch_version_proc_show,
	},
	{}
};

static struct klp_object tlp_objs[] = {
	{
		.funcs = tlp_funcs,
	},
	{}
};

static struct klp_patch tlp_patch = {
	.mod = THIS_MODULE,
	.objs = tlp_objs,
};

static int __init tlp_init(void)
{
	int ret = tlp_read_proc_text("/proc/version", tlp_banner, sizeof(tlp_banner));

	if (ret) {
		pr_err("cannot read /proc/version: %d\n", ret);
		return ret;
	}
	tlp_strip_markers(tlp_banner);
	return klp_enable_patch(&tlp_patch);
}

static void __exit tlp_exit(void)
{
}

module_init(tlp_init);
module_exit(tlp_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("transactional-livepatch test livepatch: /proc/version + tlp_marker=stack_b");
MODULE_INFO(livepatch, "Y");
