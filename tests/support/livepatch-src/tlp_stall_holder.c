// SPDX-License-Identifier: GPL-2.0
/*
 * tlp_stall_holder: an ordinary module (NOT a livepatch) that makes the
 * tlp_stall livepatch's transition hang, deterministically.
 *
 * A livepatch transition completes only when every task has been switched
 * to the new code, and a task is switched only while no function being
 * patched is on its stack (Documentation/livepatch/livepatch.rst, "Consistency
 * model"). User tasks get switched at kernel exit or via fake signals; a
 * kthread that sleeps is merely woken up. This module starts a kthread that
 * spends its whole life inside tlp_holder_sleep(), waking once a second and
 * sleeping again, and tlp_stall patches exactly tlp_holder_sleep(): that
 * kthread can never be switched, so /sys/kernel/livepatch/tlp_stall/transition
 * stays 1 until someone reverses the patch (echo 0 > .../enabled), which
 * completes at once because the kthread is still on the old code.
 *
 * How the VM test uses it: insmod tlp_stall_holder.ko first (shipped in
 * the tlp-stall-holder RPM under /lib/modules/<ABI>/extra/ and as a plain
 * file next to the RPMs), then apply the tlp-livepatch-stall RPM with the
 * tool and expect it to time out and reverse the transition. Without the
 * holder loaded, tlp_stall patches nothing yet and enables instantly.
 * rmmod tlp_stall_holder stops the kthread.
 */
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/sched.h>

static struct task_struct *tlp_holder_task;

int tlp_holder_sleep(void);

/*
 * noinline + exported: stays a real function with this exact name in the
 * module's symbol table, where the livepatch core looks it up.
 */
noinline int tlp_holder_sleep(void)
{
	while (!kthread_should_stop())
		schedule_timeout_interruptible(HZ);
	return 0;
}
EXPORT_SYMBOL_GPL(tlp_holder_sleep);

static int tlp_holder_thread(void *unused)
{
	return tlp_holder_sleep();
}

static int __init tlp_holder_init(void)
{
	tlp_holder_task = kthread_run(tlp_holder_thread, NULL, "tlp_stall_holder");
	return PTR_ERR_OR_ZERO(tlp_holder_task);
}

static void __exit tlp_holder_exit(void)
{
	kthread_stop(tlp_holder_task);
}

module_init(tlp_holder_init);
module_exit(tlp_holder_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("transactional-livepatch test helper: a kthread that blocks tlp_stall's transition");
