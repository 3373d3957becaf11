# Setup hook of fhskit's C compiler wrapper: the variables nixpkgs' wrapper exports.
export NIX_CC=@out@
export NIX_BINTOOLS=@out@
export CC=gcc
export CXX=g++
export CPP=cpp
export AR=ar AS=as LD=ld NM=nm OBJCOPY=objcopy OBJDUMP=objdump RANLIB=ranlib READELF=readelf SIZE=size
export STRINGS=strings STRIP=strip
