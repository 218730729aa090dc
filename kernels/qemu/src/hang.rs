//! `bug=final_drop_hangs` (bug-variants builds): a scheme whose final drop
//! waits for something that never happens — a CPU that stays where it is,
//! as a scheme that leaves state behind on a switch away would make it.
//! The kernel's watchdog must fail the boot naming the CPU, the stage and
//! the wait (`ci/qemu.sh` checks it), not leave the host to time out.

use lazymm::cpu::CpuId;
use lazymm::lazy::{Kernel, LazyMm};

/// `S`, except that its final drop never returns: it goes round a wait
/// loop (serving IPIs, as a scheme's wait does) forever.
pub struct HangingDrop<S>(pub S);

impl<S: LazyMm> LazyMm for HangingDrop<S> {
    const NAME: &'static str = "final_drop_hangs";
    const CPUS: usize = S::CPUS;

    fn mmgrab_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.0.mmgrab_lazy_tlb(k, cpu, mm)
    }
    fn transfer_lazy<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.0.transfer_lazy(k, cpu, mm)
    }
    fn switching_mm<K: Kernel>(&self, k: &K, cpu: CpuId, prev: Option<K::Mm>, next: Option<K::Mm>) {
        self.0.switching_mm(k, cpu, prev, next)
    }
    fn switched_mm<K: Kernel>(&self, k: &K, cpu: CpuId, prev: Option<K::Mm>, next: Option<K::Mm>) {
        self.0.switched_mm(k, cpu, prev, next)
    }
    fn mmdrop_lazy_tlb<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm, next: Option<K::Mm>) {
        self.0.mmdrop_lazy_tlb(k, cpu, mm, next)
    }
    fn mm_users_zero<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.0.mm_users_zero(k, cpu, mm)
    }
    fn final_drop<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.0.final_drop(k, cpu, mm);
        loop {
            // BUG: waits for a CPU that never answers.
            k.serve_ipis(cpu);
            core::hint::spin_loop();
        }
    }
    fn cpu_dead<K: Kernel>(&self, k: &K, cpu: CpuId) {
        self.0.cpu_dead(k, cpu)
    }
    fn lazy_shot<K: Kernel>(&self, k: &K, cpu: CpuId, mm: K::Mm) {
        self.0.lazy_shot(k, cpu, mm)
    }
}
