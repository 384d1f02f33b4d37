"""What runs inside the VM, and the host<->guest message protocol."""
