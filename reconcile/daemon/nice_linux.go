package daemon

import (
	"os"
	"strconv"
	"syscall"
)

// defaultPolicyNice is how much policy mode lowers the reconciler's CPU priority.
const defaultPolicyNice = 10

// lowerPriority, in policy mode, lowers the CPU priority of the daemon's threads (nice
// +ROSTER_POLICY_NICE, default 10; 0 leaves it) so that the answering process, at nice
// 0, gets a CPU first when an apply keeps them all busy. Linux's nice is per thread: every
// thread of /proc/self/task is set, and threads the runtime creates later inherit it from
// the thread that creates them. The thread that starts the answering process is left
// alone: the process would inherit its nice, and cannot raise its own priority back.
// Called at start and before each cycle (cheap: one syscall per thread).
func (d *daemon) lowerPriority() {
	if d.policy == nil {
		return
	}
	nice := defaultPolicyNice
	if v, err := strconv.Atoi(os.Getenv("ROSTER_POLICY_NICE")); err == nil && v >= 0 && v <= 19 {
		nice = v
	}
	if nice == 0 {
		return
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	keep := d.policy.sup.ThreadID()
	failed := 0
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil || tid == keep {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
			failed++
		}
	}
	if !d.policyNiced {
		d.policyNiced = true
		d.log.Info("serve: policy mode runs the reconciler at a lower CPU priority than the policy answers", "nice", nice,
			"threads", len(tasks)-1, "failed", failed)
	}
}
