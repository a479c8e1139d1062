//! `twill ws URL` (filled in below).
