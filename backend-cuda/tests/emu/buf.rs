//! A device buffer stand-in for the emulation tests: a buffer's elements
//! between canaries that a kernel must leave untouched, so that a write
//! past either end shows; and the bit-for-bit comparison of its contents.
//! Shared by `host_emulated_kernels.rs` and `host_emulated_tensor/`, each of
//! which uses a part.
#![allow(dead_code)]

/// An element type of a device buffer: its canary and poison values.
pub trait Elem: Copy + std::fmt::Debug {
    /// The bits every element outside a buffer keeps (a quiet NaN).
    const CANARY: Self;
    /// An output before a kernel writes it (another quiet NaN).
    const POISON: Self;
    fn bits(self) -> u64;
}

impl Elem for f32 {
    const CANARY: f32 = f32::from_bits(0x7fa5_a5a5);
    const POISON: f32 = f32::from_bits(0x7fc0_beef);
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

impl Elem for f64 {
    const CANARY: f64 = f64::from_bits(0x7ff8_dead_beef_0000);
    const POISON: f64 = f64::from_bits(0x7ff8_0000_beef_beef);
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

/// Canaries on each side of a buffer, at the least.
const PAD: usize = 4;

/// A device buffer stand-in: its elements between canaries.
pub struct Buf<T: Elem> {
    mem: Vec<T>,
    at: usize,
    len: usize,
}

impl<T: Elem> Buf<T> {
    /// `data` with [`PAD`] canaries on each side.
    pub fn new(data: &[T]) -> Self {
        let mut mem = vec![T::CANARY; data.len() + 2 * PAD];
        mem[PAD..PAD + data.len()].copy_from_slice(data);
        Buf {
            mem,
            at: PAD,
            len: data.len(),
        }
    }

    /// `data` whose first element sits `align` bytes past a 16-byte
    /// boundary (a kernel's vector or scalar path), with at least [`PAD`]
    /// canaries on each side.
    pub fn aligned(data: &[T], align: usize) -> Self {
        let size = std::mem::size_of::<T>();
        assert!(align.is_multiple_of(size) && align < 16);
        let mut mem = vec![T::CANARY; data.len() + 2 * PAD + 16 / size];
        let base = mem.as_ptr() as usize;
        let at = (PAD..PAD + 16 / size)
            .find(|&i| (base + size * i) % 16 == align)
            .expect("the element type's alignment divides 16");
        mem[at..at + data.len()].copy_from_slice(data);
        Buf {
            mem,
            at,
            len: data.len(),
        }
    }

    /// `len` elements of [`Elem::POISON`].
    pub fn poison(len: usize) -> Self {
        Self::new(&vec![T::POISON; len])
    }

    pub fn ptr(&mut self) -> *mut T {
        self.mem[self.at..].as_mut_ptr()
    }

    pub fn cptr(&self) -> *const T {
        self.mem[self.at..].as_ptr()
    }

    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.mem[self.at..self.at + self.len]
    }

    /// The contents, once the canaries are checked.
    pub fn get(&self, what: &str) -> &[T] {
        for (i, x) in self.mem.iter().enumerate() {
            if i < self.at || i >= self.at + self.len {
                assert_eq!(
                    x.bits(),
                    T::CANARY.bits(),
                    "{what}: wrote outside the buffer (offset {})",
                    i as isize - self.at as isize
                );
            }
        }
        &self.mem[self.at..self.at + self.len]
    }
}

/// Asserts that `got` and `want` are the same bits; returns how many
/// elements were compared.
pub fn same<T: Elem>(what: &str, got: &[T], want: &[T]) -> usize {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.bits() == w.bits(),
            "{what}: element {i}: emulated kernel {g:?} ({:#x}), expected {w:?} ({:#x})",
            g.bits(),
            w.bits()
        );
    }
    got.len()
}
