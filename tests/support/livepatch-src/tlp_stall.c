// SPDX-License-Identifier: GPL-2.0
/*
 * tlp_stall: a livepatch whose transition never finishes while the
 * tlp_stall_holder module is loaded (see tlp_stall_holder.c for why).
 * It patches tlp_holder_sleep() in the module object "tlp_stall_holder".
 */
#include <linux/kthread.h>
#include <linux/livepatch.h>
#include <linux/module.h>
#include <linux/sched.h>

/* Same behaviour as the original, so nothing changes if a task ever runs it. */
static int livepatch_tlp_holder_sleep(void)
{
	while (!kthread_should_stop())
		schedule_timeout_interruptible(HZ);
	return 0;
}

static struct klp_func tlp_funcs[] = {
	{
		.old_name = "tlp_holder_sleep",
		.new_func = livepatch_tlp_holder_sleep,
	},
	{}
};

static struct klp_object tlp_objs[] = {
	{
		.name = "tlp_stall_holder",
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
	return klp_enable_patch(&tlp_patch);
}

static void __exit tlp_exit(void)
{
}

module_init(tlp_init);
module_exit(tlp_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("transactional-livepatch test livepatch whose transition stalls");
MODULE_INFO(livepatch, "Y");
