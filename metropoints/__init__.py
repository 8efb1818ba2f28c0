"""Metro carbon points platform: riders earn points for the km they ride and spend them on merchants' benefits."""
